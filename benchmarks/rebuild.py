"""Rebuild times and image size: `build stack` against a naive hand-written Dockerfile, side by side.

Both build the sandbox stack (a pinned wheel, a C extension from source, an app file) for one cell
with the same engine in the same run, and push to the sandbox registry. Scenarios:

  cold        empty engine build cache, empty wheel cache
  no-op       the same build again
  app change  the app file changed
  new runner  engine build cache emptied again (another runner sharing only the wheel cache)

and the image size above the base it runs on (the naive Dockerfile runs on the devel base, as
seed 001's does). Needs the sandbox (`tests/sandbox/up` is called) and a docker daemon.

    python benchmarks/rebuild.py [--target standin-amd64/debian12-cu126] [--runs 1] [--json FILE]

--json FILE also writes the figures for `build report --benchmark FILE` (the size plot's naive bar).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from builder.build.engines import detect_docker, docker_clients  # noqa: E402
from tests.sandbox import CATALOGUE, up  # noqa: E402

SCENARIOS = ["cold", "no-op", "app change", "new runner"]


def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        sys.exit(f"failed: {shlex.join(argv)}\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return result  # type: ignore[no-any-return]


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def image_size(docker: str, reference: str) -> int:
    run([docker, "pull", "--quiet", reference])
    return int(run([docker, "image", "inspect", "--format", "{{.Size}}", reference]).stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="standin-amd64/debian12-cu126")
    parser.add_argument("--runs", type=int, default=1, help="repeat each scenario (median reported)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures as JSON (build report)")
    options = parser.parse_args()
    engine = detect_docker(docker_clients())
    if isinstance(engine, str):
        sys.exit(f"no docker: {engine}")
    docker = engine.client
    exports = up()
    registry = exports["BUILDER_SANDBOX_REGISTRY"]

    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        catalogue = work / "catalogue"
        shutil.copytree(CATALOGUE, catalogue)
        args = ["--root", str(catalogue), *shlex.split(exports["BUILDER_SANDBOX_ARGS"])]
        args += ["--index", f"default={exports['BUILDER_SANDBOX_INDEX']}", "--lock-dir", str(work / "locks")]
        build = [sys.executable, "-m", "builder", "stack", "sandbox", *args, "--engine", "docker"]
        build += ["--target", options.target, "--out", str(work / "out"), "--cache-dir", str(work / "cache")]
        build += ["--registry", f"{registry}/bench-stack", "--push", "--update-lock", "--json"]
        run([sys.executable, "-m", "builder", "lock", "sandbox", *args, "--target", options.target,
             "--cache-dir", str(work / "cache")])  # fmt: skip
        image_lock = json.loads((work / "locks" / "sandbox" / options.target / "image-lock.json").read_text())
        devel = f"{registry}/standin/devel@{image_lock['base-images']['devel']['digest']}"
        runtime = f"{registry}/standin/runtime@{image_lock['base-images']['runtime']['digest']}"
        arch = image_lock["platform"]["oci"]
        flags = shlex.split(exports["BUILDER_SANDBOX_ARGS"])
        git_mirror = flags[flags.index("--git-mirror") + 1].split("=", 1)[1]
        naive_tag = f"{registry}/bench-naive:{options.target.replace('/', '-')}"
        naive = [
            docker,
            "build",
            "--network",
            "host",
            "--platform",
            arch,
            "-f",
            str(ROOT / "benchmarks/naive/Dockerfile"),
        ]
        naive += ["--build-arg", f"BASE={devel}", "--build-arg", f"INDEX_URL={exports['BUILDER_SANDBOX_INDEX']}"]
        naive += ["--build-arg", f"SOURCE_URL={git_mirror}/standin-ext.git", "-t", naive_tag]
        naive += [str(catalogue)]
        env = {**os.environ, "DOCKER_BUILDKIT": "1"}

        def stack() -> None:
            run(build)

        def hand() -> None:
            run(naive, env=env)
            run([docker, "push", naive_tag])

        def prune() -> None:
            run([docker, "builder", "prune", "--all", "--force"])

        def touch_app() -> None:
            serve = catalogue / "app" / "serve.py"
            serve.write_text(serve.read_text() + f"# edit {time.time_ns()}\n")

        times: dict[str, dict[str, list[float]]] = {"build stack": {}, "naive": {}}
        for _ in range(options.runs):
            for tool, action in (("build stack", stack), ("naive", hand)):
                prune()
                shutil.rmtree(work / "cache" / "wheels", ignore_errors=True)
                times[tool].setdefault("cold", []).append(timed(action))
                times[tool].setdefault("no-op", []).append(timed(action))
                touch_app()
                times[tool].setdefault("app change", []).append(timed(action))
                prune()
                times[tool].setdefault("new runner", []).append(timed(action))

        result = json.loads((work / "out" / "sandbox" / options.target / "result.json").read_text())
        sizes = {
            "build stack": image_size(docker, result["image"]["reference"]) - image_size(docker, runtime),
            "naive": image_size(docker, naive_tag) - image_size(docker, devel),
        }
        totals = {
            "build stack": image_size(docker, result["image"]["reference"]),
            "naive": image_size(docker, naive_tag),
        }

    print(
        f"sandbox stack on {options.target}, docker {engine.version} ({engine.mode}), median of {options.runs} run(s)"
    )
    print(f"{'scenario':<14}{'build stack':>14}{'naive':>12}{'naive / build stack':>22}")
    for scenario in SCENARIOS:
        ours = statistics.median(times["build stack"][scenario])
        theirs = statistics.median(times["naive"][scenario])
        print(f"{scenario:<14}{ours:>12.1f} s{theirs:>10.1f} s{theirs / ours:>21.2f}x")
    print(
        f"{'above base':<14}{sizes['build stack'] / 1e6:>11.1f} MB{sizes['naive'] / 1e6:>9.1f} MB"
        f"{sizes['naive'] / sizes['build stack']:>21.2f}x"
    )
    print(
        f"{'image total':<14}{totals['build stack'] / 1e6:>11.1f} MB{totals['naive'] / 1e6:>9.1f} MB"
        f"{totals['naive'] / totals['build stack']:>21.2f}x"
    )
    if options.json is not None:
        figures = {
            "format": "builder-rebuild/1",
            "target": options.target,
            "engine": f"docker {engine.version} ({engine.mode})",
            "runs": options.runs,
            "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "seconds": {tool: {s: statistics.median(times[tool][s]) for s in SCENARIOS} for tool in times},
            "above_base_bytes": sizes,
            "total_bytes": totals,
        }
        options.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
