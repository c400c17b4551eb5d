"""Running the smoke runner: here (`--here`, this Python environment) or inside an image on this
machine's GPU (`--image`: docker with the NVIDIA runtime or `--gpus`, podman with CDI). The IO edge
of builder.smoke; argv and GPU flags are pure functions."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from builder import process
from builder.errors import CheckFailed, ToolFailed, UpstreamUnavailable
from builder.smoke.spec import IMAGE_RUNNER, RUNNER

CONTAINER_DIR = "/smoke"  # spec in, report out, and builder's runner for images that carry none
RUNNER_EXIT = {0: "pass", 1: "fail", 3: "no gpu"}
# The image's own runner when it has one (every image `build render` made does), else builder's.
IN_CONTAINER = f'r={IMAGE_RUNNER}; [ -f "$r" ] || r={CONTAINER_DIR}/runner.py; exec python3 "$r" "$@"'

Progress = Callable[[str], None]


@dataclass(frozen=True)
class HostFacts:
    """What decides how a container reaches the GPU."""

    tegra: bool  # a Jetson: /etc/nv_tegra_release
    nvidia_devices: bool  # a discrete GPU's /dev/nvidia0
    cdi: bool  # a CDI spec for NVIDIA devices (/etc/cdi or /var/run/cdi)

    @classmethod
    def read(cls, root: Path = Path("/")) -> HostFacts:
        cdi = any(any((root / d).glob("nvidia*.yaml")) for d in ("etc/cdi", "var/run/cdi") if (root / d).is_dir())
        return cls((root / "etc/nv_tegra_release").exists(), (root / "dev/nvidia0").exists(), cdi)


@dataclass(frozen=True)
class GpuAccess:
    flags: tuple[str, ...]
    how: str


def gpu_access(engine: Literal["docker", "podman"], host: HostFacts) -> GpuAccess:
    """The engine flags that give a container this host's GPU; none where the host has no NVIDIA GPU
    (the runner then reports 'no GPU' and still checks versions and imports)."""
    if engine == "podman":
        if host.cdi:
            return GpuAccess(("--device", "nvidia.com/gpu=all"), "podman with CDI (nvidia.com/gpu=all)")
        return GpuAccess((), "no NVIDIA CDI spec on this host (nvidia-ctk cdi generate makes one)")
    if host.tegra:
        return GpuAccess(("--runtime", "nvidia"), "docker with the NVIDIA runtime (Jetson)")
    if host.nvidia_devices:
        return GpuAccess(("--gpus", "all"), "docker --gpus all (NVIDIA Container Toolkit)")
    return GpuAccess((), "no NVIDIA GPU on this host")


def container_argv(
    client: str, gpu: GpuAccess, image: str, workdir: Path, models: Mapping[str, Path], platform: str | None = None
) -> list[str]:
    """`docker run` / `podman run` of the runner in `image`: offline, the spec and report in
    `workdir` (mounted at /smoke), each model directory read-only at /models/NAME."""
    argv = [client, "run", "--rm", *gpu.flags, "--network", "none", "--ipc", "host"]
    if platform:
        argv += ["--platform", platform]
    argv += ["-v", f"{workdir}:{CONTAINER_DIR}"]
    for name, directory in sorted(models.items()):
        argv += ["-v", f"{directory}:/models/{name}:ro"]
    argv += ["--entrypoint", "/bin/sh", image, "-c", IN_CONTAINER, "smoke"]
    return argv + runner_args(Path(CONTAINER_DIR))


def runner_args(workdir: Path) -> list[str]:
    return ["--spec", str(workdir / "spec.json"), "--out", str(workdir / "smoke.json"), "--work-dir", "/tmp/smoke-work"]


def here_argv(workdir: Path, python: str = sys.executable) -> list[str]:
    args = runner_args(workdir)
    args[-1] = str(workdir / "work")
    return [python, str(RUNNER), *args]


@dataclass(frozen=True)
class RunnerOutcome:
    report: dict[str, Any]
    code: int


def prepare(workdir: Path, spec: Mapping[str, Any]) -> None:
    """The spec, and builder's runner for an image that carries none; writable by the image's user."""
    (workdir / "spec.json").write_text(json.dumps(spec, indent=2) + "\n")
    shutil.copyfile(RUNNER, workdir / "runner.py")
    workdir.chmod(0o777)  # a temporary directory of ours; the image may run as an unprivileged user


def collect(workdir: Path, code: int, log: Path, what: str) -> RunnerOutcome:
    """The runner's report, or why there is none."""
    report_file = workdir / "smoke.json"
    if code == 2:
        raise ToolFailed(f"the smoke runner refused its spec (exit 2): {_last_error(log)} (log: {log})")
    if code not in RUNNER_EXIT or not report_file.is_file():
        raise CheckFailed(
            f"{what}: the smoke runner ended with exit {code} and no report: {_last_error(log)} (log: {log})"
        )
    try:
        report = json.loads(report_file.read_text())
    except ValueError as error:
        raise CheckFailed(f"{what}: the smoke runner's report is not JSON ({error}); log: {log}") from None
    return RunnerOutcome(report, code)


def _last_error(log: Path) -> str:
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["no output"])[-1][:300]


def run_here(spec: Mapping[str, Any], workdir: Path, log: Path, progress: Progress) -> RunnerOutcome:
    prepare(workdir, spec)
    code = process.run_relayed(here_argv(workdir), log, progress)
    return collect(workdir, code, log, "here")


def container_client(engine: Literal["auto", "docker", "podman"]) -> tuple[Literal["docker", "podman"], str]:
    """The engine that runs the image: docker when its daemon answers, else podman; exit 3 without one."""
    from builder.build.engines import detect_docker, docker_clients

    reasons = []
    if engine in ("auto", "docker"):
        docker = detect_docker(docker_clients())
        if not isinstance(docker, str):
            return "docker", docker.client
        reasons.append(f"docker: {docker}")
    if engine in ("auto", "podman"):
        podman = shutil.which("podman")
        if podman is not None:
            return "podman", podman
        reasons.append("podman: not installed")
    raise UpstreamUnavailable(
        f"no container engine can run the image ({'; '.join(reasons)})",
        hint="install docker (with the NVIDIA Container Toolkit) or podman (with a CDI spec), or use --here",
    )


def run_in_image(
    client: str,
    gpu: GpuAccess,
    image: str,
    spec: Mapping[str, Any],
    models: Mapping[str, Path],
    workdir: Path,
    log: Path,
    progress: Progress,
    platform: str | None = None,
) -> RunnerOutcome:
    prepare(workdir, spec)
    progress(f"running the smoke runner in {image} ({gpu.how})")
    code = process.run_relayed(container_argv(client, gpu, image, workdir, models, platform), log, progress)
    if code == 125 or (code in (126, 127) and not (workdir / "smoke.json").exists()):
        raise UpstreamUnavailable(f"{client} could not run {image} (exit {code}): {_last_error(log)} (log: {log})")
    return collect(workdir, code, log, image)


def load_layout(kind: Literal["docker", "podman"], layout: Path, name: str, digest: str) -> str:
    """An image of an OCI layout, copied into the engine's store (neither runs a layout directly):
    the local name it runs under."""
    local = f"builder-smoke:{digest.removeprefix('sha256:')[:12]}"
    destination = f"docker-daemon:{local}" if kind == "docker" else f"containers-storage:localhost/{local}"
    skopeo = process.require_tool("skopeo", "install skopeo (Debian: apt-get install skopeo)")
    done = process.run([skopeo, "copy", "--quiet", f"oci:{layout}:{name}", destination], timeout=1800)
    if done.returncode != 0:
        raise ToolFailed(f"skopeo could not copy oci:{layout}:{name} into {kind}: {done.tail()}")
    return local
