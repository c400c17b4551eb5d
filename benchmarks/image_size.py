"""Image size: what the sandbox image adds above its runtime base, this checkout beside a baseline.

    python benchmarks/image_size.py [--baseline DIR] [--engine docker] [--engine buildah]

Builds the sandbox stack for standin-amd64/debian12-cu126 with `build stack` from this checkout
(and from an older checkout given with --baseline, e.g. `git archive <commit> | tar -x -C DIR`),
with each engine, in one run against the same sandbox servers, catalogue and wheel cache, into OCI
layouts. For the layers above the runtime base it prints their compressed bytes (what a push or a
pull moves), their uncompressed tar bytes (what an engine unpacks), the part of those that the
finished image holds in site-packages and /app, and the ratio of the two (tests/imagebytes.py
defines the measures; the e2e test asserts the ratio is at most 1.05). The stand-in extension's
wheel carries 8 MiB of random bytes, so a wheel left behind in a layer shows. Needs the sandbox
(`tests/sandbox/up` is called), docker and buildah. The tags it makes are removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.imagebytes import AddedBytes, added_bytes, base_diff_ids  # noqa: E402
from tests.sandbox import CATALOGUE, up  # noqa: E402

TARGET = "standin-amd64/debian12-cu126"
ROOTS = ("opt/venv/lib/python3.11/site-packages", "app")  # the sandbox cells' Python is 3.11
DOCKER = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker"  # Debian's, with built-in BuildKit


def run(argv: list[str], tree: Path = ROOT) -> str:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    result = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=tree, env=env)
    if result.returncode != 0:
        sys.exit(f"failed: {shlex.join(argv)}\n{result.stdout[-2000:]}{result.stderr[-3000:]}")
    return result.stdout


def measure(tree: Path, engine: str, work: Path, catalogue: Path, exports: dict[str, str]) -> AddedBytes:
    """Build with `tree`'s builder and `engine`; measure the layers above the runtime base."""
    name = f"{'baseline' if tree != ROOT else 'this'}-{engine}"
    args = ["--root", str(catalogue), *shlex.split(exports["BUILDER_SANDBOX_ARGS"])]
    args += ["--index", f"default={exports['BUILDER_SANDBOX_INDEX']}", "--lock-dir", str(work / f"locks-{name}")]
    registry = exports["BUILDER_SANDBOX_REGISTRY"]
    printed = run(
        [sys.executable, "-m", "builder", "stack", "sandbox", *args, "--target", TARGET, "--engine", engine,
         "--update-lock", "--out", str(work / f"out-{name}"), "--cache-dir", str(work / "cache"),
         "--registry", f"{registry}/bench-size-{name}", "--json"],
        tree,
    )  # fmt: skip
    result = json.loads(printed)["results"][0]
    base = base_diff_ids(registry, result["base"]["runtime"], "amd64")
    sizes = added_bytes(Path(result["image"]["oci-layout"]), result["image"]["digest"], base, ROOTS)
    remove = [DOCKER, "rmi"] if engine == "docker" else ["buildah", "--storage-driver", "vfs", "rmi"]
    run([*remove, *result["image"]["tags"]])
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="an older checkout to build beside this one")
    parser.add_argument("--engine", action="append", choices=["docker", "buildah"], help="default: both")
    options = parser.parse_args()
    engines = options.engine or ["docker", "buildah"]
    trees = {"this checkout": ROOT, **({"baseline": options.baseline.resolve()} if options.baseline else {})}
    exports = up()
    figures: dict[tuple[str, str], AddedBytes] = {}
    with tempfile.TemporaryDirectory(prefix="image-size-") as scratch:
        work = Path(scratch)
        catalogue = work / "catalogue"
        shutil.copytree(CATALOGUE, catalogue)
        for engine in engines:
            for label, tree in trees.items():
                figures[(engine, label)] = measure(tree, engine, work, catalogue, exports)

    print(f"sandbox stack on {TARGET}: the layers above the runtime base, bytes")
    print(
        f"{'engine':<9}{'checkout':<15}{'layers':>7}{'compressed':>12}{'uncompressed':>14}{'installed':>12}{'ratio':>9}"
    )
    for (engine, label), sizes in figures.items():
        print(
            f"{engine:<9}{label:<15}{sizes.layers:>7}{sizes.compressed:>12,}{sizes.added:>14,}"
            f"{sizes.installed:>12,}{sizes.ratio:>8.3f}x"
        )
    for engine in engines:
        if (engine, "baseline") in figures:
            before, after = figures[(engine, "baseline")], figures[(engine, "this checkout")]
            print(
                f"{engine}: {before.added - after.added:,} uncompressed bytes fewer "
                f"({before.compressed - after.compressed:,} compressed); baseline's largest members outside "
                f"site-packages and /app: {before.leftovers[:2]}"
            )


if __name__ == "__main__":
    main()
