"""Rebuild times and image size: `build stack` against a naive hand-written Dockerfile, side by side.

Both build the sandbox stack (a pinned wheel, a C extension from source, an app file) for one cell
with the same engine in the same run, and push to the sandbox registry. Scenarios:

  cold        empty engine build cache, empty wheel cache, no earlier result (docker only)
  no-op       the same build again
  app change  the app file changed
  new runner  engine build cache emptied again (another runner sharing only the wheel cache;
              docker only)

For cold and new runner it also prints how much of build stack's time went into making the
SBOMs (syft's scan and the join, from result.json's `sbom.seconds`: work the naive build does not
do) and the rest against the naive build. Then the image size above the base it runs on (the
naive Dockerfile runs on the devel base, as seed 001's does). With `--engine buildah` only no-op
and app change are measured, after a first build of each: emptying buildah's layer cache would
empty the machine's shared containers-storage.
Needs the sandbox (`tests/sandbox/up` is called) and the engine. The images it made are removed.

    python benchmarks/rebuild.py [--engine docker|buildah] [--target standin-amd64/debian12-cu126] [--runs 1] [--json FILE]

--json FILE also writes the figures for `build report --benchmark FILE` (the size plot's naive bar).
"""

from __future__ import annotations

import argparse
import functools
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
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from builder.build.engines import detect_docker, docker_clients  # noqa: E402
from tests.sandbox import CATALOGUE, up  # noqa: E402

SCENARIOS = ["cold", "no-op", "app change", "new runner"]
# issue 14: build stack's time at most this many times the naive Dockerfile's (and a no-op at most 0.3 s)
TARGETS = {"cold": 1.3, "no-op": 1.5, "app change": 1.2}
NO_OP_SECONDS = 0.3


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


def measured(
    times: dict[str, dict[str, list[float]]],
    sbom_seconds: dict[str, list[float]],
    result_json: Path,
    tool: str,
    scenario: str,
    action: Callable[[], object],
) -> None:
    """Time `action`; for build stack, also how long it took to make the SBOMs where it made them
    (in the scenarios that cannot keep them from the last build)."""
    times[tool].setdefault(scenario, []).append(timed(action))
    if tool == "build stack" and scenario in ("cold", "new runner"):
        sbom_seconds.setdefault(scenario, []).append(float(json.loads(result_json.read_text())["sbom"]["seconds"]))


def image_sizes(docker: str, images: dict[str, str], bases: dict[str, str]) -> tuple[dict[str, int], dict[str, int]]:
    """Each tool's image size above the base it runs on, and in total."""
    totals = {tool: image_size(docker, reference) for tool, reference in images.items()}
    return {tool: totals[tool] - image_size(docker, bases[tool]) for tool in images}, totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=("docker", "buildah"), default="docker")
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
    buildah = ["buildah", "--storage-driver", "vfs"]

    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        catalogue = work / "catalogue"
        shutil.copytree(CATALOGUE, catalogue)
        env = {**os.environ, "DOCKER_BUILDKIT": "1", "BUILDER_CACHE_DIR": str(work / "builder-cache")}
        args = ["--root", str(catalogue), *shlex.split(exports["BUILDER_SANDBOX_ARGS"])]
        args += ["--index", f"default={exports['BUILDER_SANDBOX_INDEX']}", "--lock-dir", str(work / "locks")]
        build = [sys.executable, "-m", "builder", "stack", "sandbox", *args, "--engine", options.engine]
        build += ["--target", options.target, "--out", str(work / "out"), "--cache-dir", str(work / "cache")]
        build += ["--registry", f"{registry}/bench-stack", "--push", "--update-lock", "--json"]
        run([sys.executable, "-m", "builder", "lock", "sandbox", *args, "--target", options.target,
             "--cache-dir", str(work / "cache")], env=env)  # fmt: skip
        image_lock = json.loads((work / "locks" / "sandbox" / options.target / "image-lock.json").read_text())
        devel = f"{registry}/standin/devel@{image_lock['base-images']['devel']['digest']}"
        runtime = f"{registry}/standin/runtime@{image_lock['base-images']['runtime']['digest']}"
        arch = image_lock["platform"]["oci"]
        flags = shlex.split(exports["BUILDER_SANDBOX_ARGS"])
        git_mirror = flags[flags.index("--git-mirror") + 1].split("=", 1)[1]
        naive_tag = f"{registry}/bench-naive:{options.target.replace('/', '-')}"
        naive_args = ["--platform", arch, "-f", str(ROOT / "benchmarks/naive/Dockerfile")]
        naive_args += ["--build-arg", f"BASE={devel}", "--build-arg", f"INDEX_URL={exports['BUILDER_SANDBOX_INDEX']}"]
        naive_args += ["--build-arg", f"SOURCE_URL={git_mirror}/standin-ext.git", "-t", naive_tag, str(catalogue)]

        def stack() -> None:
            run(build, env=env)

        def hand() -> None:
            if options.engine == "docker":
                run([docker, "build", "--network", "host", *naive_args], env=env)
                run([docker, "push", naive_tag])
            else:
                run([*buildah, "bud", "--isolation", "chroot", "--layers", "--network", "host", "--tls-verify=false",
                     *naive_args])  # fmt: skip
                run([*buildah, "push", "--tls-verify=false", naive_tag, f"docker://{naive_tag}"])

        def prune() -> None:
            run([docker, "builder", "prune", "--all", "--force"])

        def new_runner() -> None:
            """Nothing of an earlier build but the wheel cache (and the engine's cache as the scenario says)."""
            shutil.rmtree(work / "out", ignore_errors=True)
            shutil.rmtree(work / "builder-cache", ignore_errors=True)

        def touch_app() -> None:
            serve = catalogue / "app" / "serve.py"
            serve.write_text(serve.read_text() + f"# edit {time.time_ns()}\n")

        times: dict[str, dict[str, list[float]]] = {"build stack": {}, "naive": {}}
        sbom_seconds: dict[str, list[float]] = {}  # of build stack's time, making the SBOMs (result.json)
        result_json = work / "out" / "sandbox" / options.target / "result.json"
        measure = functools.partial(measured, times, sbom_seconds, result_json)

        repositories = [f"{registry}/bench-stack", f"{registry}/bench-naive"]
        try:
            for _ in range(options.runs):
                for tool, action in (("build stack", stack), ("naive", hand)):
                    new_runner()
                    if options.engine == "docker":
                        prune()
                        shutil.rmtree(work / "cache" / "wheels", ignore_errors=True)
                        measure(tool, "cold", action)
                    else:
                        action()  # buildah's layer cache is shared: warm it instead of emptying it
                    measure(tool, "no-op", action)
                    touch_app()
                    measure(tool, "app change", action)
                    clean_up(docker, buildah, options.engine, repositories, keep_tagged=True)
                    if options.engine == "docker":
                        prune()
                        new_runner()
                        measure(tool, "new runner", action)
                    if tool == "build stack":  # read before the naive build's new runner empties out/
                        result = json.loads((work / "out" / "sandbox" / options.target / "result.json").read_text())

            sizes, totals = None, None
            if options.engine == "docker":
                sizes, totals = image_sizes(docker, {"build stack": result["image"]["reference"], "naive": naive_tag},
                                            {"build stack": runtime, "naive": devel})  # fmt: skip
        finally:
            clean_up(docker, buildah, options.engine, repositories)

    version = f"docker {engine.version} ({engine.mode})" if options.engine == "docker" else "buildah"
    print(f"sandbox stack on {options.target}, {version}, median of {options.runs} run(s)")
    report(times, sizes, totals, sbom_seconds)
    if options.json is not None and sizes is not None and totals is not None:
        figures = {
            "format": "builder-rebuild/1",
            "target": options.target,
            "engine": version,
            "runs": options.runs,
            "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **medians(times, sbom_seconds),
            "above_base_bytes": sizes,
            "total_bytes": totals,
        }
        options.json.write_text(json.dumps(figures, indent=2) + "\n")


def medians(times: dict[str, dict[str, list[float]]], sbom_seconds: dict[str, list[float]]) -> dict[str, Any]:
    return {
        "seconds": {tool: {s: statistics.median(v) for s, v in runs.items()} for tool, runs in times.items()},
        "sbom_seconds": {s: statistics.median(v) for s, v in sbom_seconds.items()},
    }


def report(
    times: dict[str, dict[str, list[float]]],
    sizes: dict[str, int] | None,
    totals: dict[str, int] | None,
    sbom_seconds: dict[str, list[float]],
) -> None:
    print(f"{'scenario':<14}{'build stack':>14}{'naive':>12}{'build stack / naive':>22}{'target':>18}")
    for scenario in SCENARIOS:
        if scenario not in times["build stack"]:
            continue
        ours = statistics.median(times["build stack"][scenario])
        theirs = statistics.median(times["naive"][scenario])
        target = f"<= {TARGETS[scenario]}x" if scenario in TARGETS else ""
        if scenario == "no-op":
            target += f", <= {NO_OP_SECONDS} s"
        print(f"{scenario:<14}{ours:>12.2f} s{theirs:>10.2f} s{ours / theirs:>21.2f}x{target:>18}")
        if scenario in sbom_seconds:  # the part of build stack's time the naive build has no counterpart for
            runs = zip(times["build stack"][scenario], sbom_seconds[scenario], strict=True)
            rest = statistics.median(total - sbom for total, sbom in runs)
            print(f"{'  SBOMs':<14}{statistics.median(sbom_seconds[scenario]):>12.2f} s")
            print(f"{'  the rest':<14}{rest:>12.2f} s{theirs:>10.2f} s{rest / theirs:>21.2f}x")
    if sizes is not None and totals is not None:
        print(
            f"{'above base':<14}{sizes['build stack'] / 1e6:>11.1f} MB{sizes['naive'] / 1e6:>9.1f} MB"
            f"{sizes['build stack'] / sizes['naive']:>21.2f}x"
        )
        print(
            f"{'image total':<14}{totals['build stack'] / 1e6:>11.1f} MB{totals['naive'] / 1e6:>9.1f} MB"
            f"{totals['build stack'] / totals['naive']:>21.2f}x"
        )


def clean_up(
    docker: str, buildah: list[str], engine: str, repositories: list[str], *, keep_tagged: bool = False
) -> None:
    """Remove the images this run made (disk is tight under vfs storage): the ones a later build
    untagged, and unless `keep_tagged` the tagged ones too."""
    listed = run([docker, "images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]).stdout.splitlines()
    mine = [line.split() for line in listed if line.split()[0].rpartition(":")[0] in repositories]
    untagged = sorted({image for name, image in mine if name.endswith(":<none>")})
    tagged = [] if keep_tagged else [name for name, _ in mine if not name.endswith(":<none>")]
    if untagged or tagged:
        subprocess.run([docker, "rmi", *tagged, *untagged], capture_output=True, check=False)
    if engine == "buildah":
        listed = run([*buildah, "images", "--format", "{{.Name}}:{{.Tag}}"]).stdout.split()
        names = [n for n in listed if n.rpartition(":")[0].removeprefix("localhost/") in repositories]
        if names:
            subprocess.run([*buildah, "rmi", *names], capture_output=True, check=False)


if __name__ == "__main__":
    main()
