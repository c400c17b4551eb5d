"""Start-up benchmark: how long everyday commands take as whole processes, side by side in one run.

    python benchmarks/startup.py [--runs N] [--baseline DIR]

Times, for this checkout (and for an older checkout given with --baseline, e.g. a `git worktree`
of an earlier commit), the median wall time of:

- bare Python (`python -c pass`), the floor every command pays;
- `build --version`;
- `build validate` on the shipped catalogue;
- `build plan` of maie-jetson from a lock (the committed lock snapshot, attached to the catalogue);
- `build validate` and `build matrix --json` on a generated catalogue of 1,009 cells (1,539 files).

Each command runs as `python -m builder ...` with PYTHONPATH set to the tree under test, after one
warm-up, in alternation between the trees so that a drifting machine affects both alike. Each is
timed twice: "cold", with an empty cache directory every run (the first run after any change to
the catalogue, the lock or builder), and "warm", with the cache the warm-up filled (the catalogue
snapshot and the memo of catalogue-only output: nothing changed since the last run). The targets
from issue 10 are printed beside the figures.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STACK, TARGET = "maie-jetson", "orin-nano-super/jp6.2-cu126"
TARGETS = {"--version": 0.12, "validate": 0.25, "plan (from a lock)": 0.20, "validate 1,009 cells": 2.0}


def catalogue_copy(destination: Path, extra_devices: int = 0) -> Path:
    for name in ("matrix", "recipes", "stacks"):
        shutil.copytree(ROOT / name, destination / name)
    device = destination / "matrix" / "orin-nano-super"
    for number in range(extra_devices):
        copy = destination / "matrix" / f"gen-{number:04d}"
        shutil.copytree(device, copy)
        text = (copy / "device.yaml").read_text()
        (copy / "device.yaml").write_text(re.sub(r"^id: .*$", f"id: gen-{number:04d}", text, flags=re.M))
        for cell in copy.glob("jp*.yaml"):
            cell.write_text(re.sub(r"^device: .*$", f"device: gen-{number:04d}", cell.read_text(), flags=re.M))
    return destination


def attach_lock(root: Path) -> None:
    """The committed lock snapshot of maie-jetson, re-attached to this catalogue's files (as the tests do)."""
    sys.path.insert(0, str(ROOT))
    from builder.lock.inputs import input_checksums, overall
    from builder.lock.model import ImageLock, LockInputs
    from builder.validate import load_catalogue

    catalogue = load_catalogue(root)
    directory = root / "locks" / STACK / TARGET
    shutil.copytree(ROOT / "tests" / "fixtures" / "locks" / STACK / TARGET, directory)
    image = ImageLock.model_validate_json((directory / "image-lock.json").read_text())
    files = input_checksums(catalogue, catalogue.stacks[STACK].model, TARGET)
    image = image.model_copy(update={"inputs": LockInputs(checksum=overall(files), files=files)}).sealed()
    (directory / "image-lock.json").write_text(image.to_text())


def seconds(argv: list[str], tree: Path | None, cwd: Path, cold: bool = False) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree)} if tree else dict(os.environ)
    env["BUILDER_CACHE_DIR"] = tempfile.mkdtemp(prefix="cold-") if cold else str(cwd.parent / "cache")
    started = time.perf_counter()
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed in {cwd}: {result.stderr.decode()[-500:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--baseline", type=Path, help="an older checkout to time beside this one")
    args = parser.parse_args()
    python = sys.executable
    trees = {"this checkout": ROOT, **({"baseline": args.baseline.resolve()} if args.baseline else {})}
    with tempfile.TemporaryDirectory(prefix="startup-") as scratch:
        shipped = catalogue_copy(Path(scratch) / "shipped")
        attach_lock(shipped)
        large = catalogue_copy(Path(scratch) / "large", extra_devices=500)
        files = sum(1 for _ in large.rglob("*.yaml"))
        cells = sum(1 for p in (large / "matrix").rglob("*.yaml") if p.name not in ("device.yaml", "indexes.yaml"))
        cases = {
            "python -c pass": ([python, "-c", "pass"], shipped, False),
            "--version": ([python, "-m", "builder", "--version"], shipped, True),
            "validate": ([python, "-m", "builder", "validate"], shipped, True),
            "show": ([python, "-m", "builder", "show", STACK], shipped, True),
            "plan (from a lock)": ([python, "-m", "builder", "plan", STACK, "--target", TARGET], shipped, True),
            "validate 1,009 cells": ([python, "-m", "builder", "validate"], large, True),
            "matrix --json 1,009 cells": ([python, "-m", "builder", "matrix", "--json"], large, True),
        }
        figures: dict[tuple[str, str], list[float]] = {}
        rows = []
        for name, (argv, cwd, ours) in cases.items():
            for tree in trees.values():
                seconds(argv, tree if ours else None, cwd)  # warm-up: page cache, .pyc files, the cache
            for temperature in ("cold", "warm") if ours else ("",):
                row = f"{name} ({temperature})" if temperature else name
                rows.append(row)
                for _ in range(args.runs):
                    for tree_name, tree in trees.items():
                        took = seconds(argv, tree if ours else None, cwd, cold=temperature == "cold")
                        figures.setdefault((row, tree_name), []).append(took)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; {args.runs} runs each after a warm-up;")
    print(f"generated catalogue: {cells} cells in {files} YAML files; median (min) wall seconds")
    header = f"{'command':<34}" + "".join(f"{tree:>22}" for tree in trees) + f"{'target':>10}"
    print(header)
    for name in rows:
        line = f"{name:<34}"
        for tree_name in trees:
            values = figures[(name, tree_name)]
            line += f"{statistics.median(values):>13.3f} ({min(values):.3f})"
        target = TARGETS.get(name.rsplit(" (", 1)[0])
        line += f"{'<= ' + format(target, 'g') if target else '':>10}"
        print(line)
    if args.baseline:
        print("ratios (baseline / this checkout, medians):")
        for name in rows:
            ratio = statistics.median(figures[(name, "baseline")]) / statistics.median(figures[(name, "this checkout")])
            print(f"  {name:<32} {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
