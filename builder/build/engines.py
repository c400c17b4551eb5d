"""Container engines behind one Protocol: docker with BuildKit (buildx, or the daemon's built-in
BuildKit under DOCKER_BUILDKIT=1) and buildah. Argv builders are pure; detection runs the tools."""

from __future__ import annotations

import json
import os
import platform as host_platform
import shutil
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol

from packaging.version import InvalidVersion, Version

from builder import process
from builder.errors import UpstreamUnavailable, UsageError

MIN_DOCKER = Version("20.10")  # BuildKit secrets and cache mounts in the daemon's builder
MIN_BUILDAH = Version("1.24")  # RUN --mount=type=cache and --secret in `buildah bud`
# `bake --allow` grants what bake asks for (the host network, paths outside its working directory)
MIN_BAKE = Version("0.17")
INSTALL_HINT = "install docker.io and start dockerd, or install buildah (apt-get install docker.io buildah)"
BUILDX_HINT = (
    "install docker's buildx plugin (Debian/Ubuntu: apt-get install docker-buildx; Docker's own packages: "
    "docker-buildx-plugin), then create the builder (docs/fleet.md)"
)
HOST_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
QEMU_NAME = {"arm64": "qemu-aarch64", "amd64": "qemu-x86_64"}


@dataclass(frozen=True)
class BuildRequest:
    """One `build` of one stage of a rendered Dockerfile."""

    context: Path
    target: str
    platform: str  # linux/arm64
    tags: tuple[str, ...] = ()
    dockerfile: Path | None = None  # default: context/Dockerfile
    secrets: Mapping[str, Path] = field(default_factory=dict)  # id -> file
    build_args: Mapping[str, str] = field(default_factory=dict)
    iidfile: Path | None = None
    network_host: bool = True
    output: Path | None = None  # export the stage's files into this directory instead of making an image
    tls_verify: bool = True  # False: base images come from a plain-HTTP registry (buildah; dockerd decides itself)


class Engine(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def client(self) -> str:
        """The engine's command-line client."""
        ...

    @property
    def version(self) -> Version: ...

    @property
    def transient_failures(self) -> tuple[str, ...]:
        """Log lines of failures that a second try gets past."""
        ...

    @property
    def merges_concurrent_builds(self) -> bool:
        """Whether builds running at once share identical steps (BuildKit's solver does: a stage two
        builds need is built once), so a build may start while another still builds its stages."""
        ...

    def build_argv(self, request: BuildRequest) -> list[str]: ...

    def build_env(self) -> dict[str, str]: ...

    def push_argv(self, image: str, destination: str, digestfile: Path, insecure: bool = False) -> list[str]: ...

    def tag_argv(self, image: str, tag: str) -> list[str]: ...

    def oci_layout_argv(self, image: str, directory: Path, tag: str, digestfile: Path) -> list[str]: ...

    def pull_argv(self, image: str, insecure: bool = False) -> list[str]: ...


def _common_flags(request: BuildRequest) -> list[str]:
    argv = ["--file", str(request.dockerfile or request.context / "Dockerfile"), "--target", request.target]
    argv += ["--platform", request.platform]
    if request.network_host:
        argv += ["--network", "host"]
    for secret_id, source in sorted(request.secrets.items()):
        argv += ["--secret", f"id={secret_id},src={source}"]
    for key, value in sorted(request.build_args.items()):
        argv += ["--build-arg", f"{key}={value}"]
    for tag in request.tags:
        argv += ["--tag", tag]
    if request.iidfile is not None:
        argv += ["--iidfile", str(request.iidfile)]
    if request.output is not None:
        argv += ["--output", f"type=local,dest={request.output}"]
    return argv


@dataclass(frozen=True)
class Docker:
    client: str
    version: Version
    mode: Literal["buildx", "builtin"]
    name: str = "docker"
    transient_failures: tuple[str, ...] = ()
    merges_concurrent_builds: bool = True
    buildx_version: Version | None = None
    builder: str | None = None  # a buildx builder instance (remote BuildKit, several nodes, kubernetes)

    def _buildx(self) -> list[str]:
        return [self.client, "buildx", *(["--builder", self.builder] if self.builder else [])]

    def build_argv(self, request: BuildRequest) -> list[str]:
        if self.mode == "builtin":
            return [self.client, "build", "--progress", "plain", *_common_flags(request), str(request.context)]
        # buildx keeps images in its builder unless told to load them into the daemon
        load = ["--load"] if request.output is None else []
        return [*self._buildx(), "build", *load, "--progress", "plain", *_common_flags(request), str(request.context)]

    @property
    def bakes(self) -> bool:
        """Whether source builds go through `docker buildx bake` (buildx new enough for `bake --allow`)."""
        return self.mode == "buildx" and self.buildx_version is not None and self.buildx_version >= MIN_BAKE

    def bake_argv(self, files: Sequence[Path], targets: Sequence[str], allow: Sequence[str]) -> list[str]:
        """`docker buildx bake` of `targets` from bake files merged in order (later ones override)."""
        argv = [*self._buildx(), "bake", "--progress", "plain"]
        for file in files:
            argv += ["--file", str(file)]
        for entitlement in allow:
            argv += ["--allow", entitlement]
        return [*argv, *targets]

    def inspect_builder_argv(self) -> list[str]:
        return [*self._buildx(), "inspect"]

    def pull_argv(self, image: str, insecure: bool = False) -> list[str]:
        del insecure  # the daemon decides on TLS (loopback and its insecure-registries are plain HTTP)
        return [self.client, "pull", "--quiet", image]

    def build_env(self) -> dict[str, str]:
        # The daemon's own BuildKit needs this switch; buildx ignores it.
        return {**os.environ, "DOCKER_BUILDKIT": "1"}

    def push_argv(self, image: str, destination: str, digestfile: Path, insecure: bool = False) -> list[str]:
        del image, digestfile, insecure  # docker pushes the tag, prints the digest; the daemon decides on TLS
        return [self.client, "push", destination]

    def tag_argv(self, image: str, tag: str) -> list[str]:
        return [self.client, "tag", image, tag]

    def oci_layout_argv(self, image: str, directory: Path, tag: str, digestfile: Path) -> list[str]:
        # The daemon's own `save` writes Docker's archive format before Docker 25; skopeo writes OCI.
        return ["skopeo", "copy", "--quiet", "--digestfile", str(digestfile), f"docker-daemon:{image}",
                f"oci:{directory}:{tag}"]  # fmt: skip


@dataclass(frozen=True)
class Buildah:
    client: str
    version: Version
    storage_driver: str = "vfs"
    name: str = "buildah"
    # containers/storage re-executes buildah from a sealed memfd for each RUN under chroot
    # isolation; the kernel refuses the seal with EBUSY while a page of it is still pinned.
    transient_failures: tuple[str, ...] = ("sealing memfd copy: Device or resource busy",)
    merges_concurrent_builds: bool = False  # each `buildah bud` runs every step it needs itself

    def _base(self) -> list[str]:
        return [self.client, "--storage-driver", self.storage_driver]

    def build_argv(self, request: BuildRequest) -> list[str]:
        return [
            *self._base(),
            "bud",
            "--isolation",
            "chroot",
            "--layers",
            *([] if request.tls_verify else ["--tls-verify=false"]),
            *_common_flags(request),
            str(request.context),
        ]

    def build_env(self) -> dict[str, str]:
        return dict(os.environ)

    def push_argv(self, image: str, destination: str, digestfile: Path, insecure: bool = False) -> list[str]:
        tls = ["--tls-verify=false"] if insecure else []
        return [*self._base(), "push", *tls, "--digestfile", str(digestfile), image, f"docker://{destination}"]

    def tag_argv(self, image: str, tag: str) -> list[str]:
        return [*self._base(), "tag", image, tag]

    def oci_layout_argv(self, image: str, directory: Path, tag: str, digestfile: Path) -> list[str]:
        return [*self._base(), "push", "--quiet", "--digestfile", str(digestfile), image, f"oci:{directory}:{tag}"]

    def pull_argv(self, image: str, insecure: bool = False) -> list[str]:
        return [*self._base(), "pull", "--quiet", *(["--tls-verify=false"] if insecure else []), image]


# ---------------------------------------------------------------- bake files


def bake_overrides(requests: Mapping[str, BuildRequest]) -> dict[str, Any]:
    """A bake file that, merged after the rendered docker-bake.json, makes each named target build
    as `request` says: its stage, platform, output, build arguments, secrets and network. Only
    fields of bake's JSON format (buildx bake/bake.go `Target`): context, dockerfile, target,
    platforms, output, cache-to, args, secret, network, tags."""
    targets: dict[str, Any] = {}
    for name, request in sorted(requests.items()):
        target: dict[str, Any] = {
            "context": str(request.context),
            "dockerfile": str(request.dockerfile or request.context / "Dockerfile"),
            "target": request.target,
            "platforms": [request.platform],
            # The rendered file's local cache lives in the context, which every render replaces:
            # exporting to it would only copy BuildKit's cache back from the builder to throw it away.
            "cache-to": [],
        }
        if request.output is not None:
            target["output"] = [f"type=local,dest={request.output}"]
        if request.tags:
            target["tags"] = list(request.tags)
        if request.build_args:
            target["args"] = dict(sorted(request.build_args.items()))
        if request.secrets:
            target["secret"] = [f"id={key},src={path}" for key, path in sorted(request.secrets.items())]
        if request.network_host:
            target["network"] = "host"
        targets[name] = target
    return {"target": targets}


def bake_entitlements(requests: Mapping[str, BuildRequest], working_directory: Path) -> list[str]:
    """What `bake --allow` must grant (buildx >= 0.17 refuses, or asks on a terminal, otherwise):
    the host network, reading secrets outside the bake file's directory, writing the outputs."""
    allow: set[str] = set()
    for request in requests.values():
        if request.network_host:
            allow.add("network.host")
        for path in request.secrets.values():
            if not path.is_relative_to(working_directory):
                allow.add(f"fs.read={path}")
        if request.output is not None and not request.output.is_relative_to(working_directory):
            allow.add(f"fs.write={request.output}")
    return sorted(allow)


# ---------------------------------------------------------------- detection

Runner = Callable[[Sequence[str]], process.Completed]


def _version(text: str) -> Version | None:
    try:
        return Version(text.strip().lstrip("v").split("+")[0].split("-")[0])
    except InvalidVersion:
        return None


def docker_clients() -> list[str]:
    """Docker clients to try: the first on PATH, then Debian's own (which has built-in BuildKit)."""
    found: list[str] = []
    for candidate in (shutil.which("docker"), "/usr/bin/docker", "/usr/local/bin/docker"):
        if candidate and Path(candidate).exists() and os.path.realpath(candidate) not in map(os.path.realpath, found):
            found.append(candidate)
    return found


def detect_docker(clients: Sequence[str], run: Runner = process.run) -> Docker | str:
    """The first usable docker client, or why none is. The clients are asked at once (each is two
    or three CLI calls, a tenth of a second apiece, before every build)."""
    with ThreadPoolExecutor(max(1, len(clients))) as pool:
        found = list(pool.map(lambda client: _probe_docker(client, run), clients))
    usable = [probe for probe in found if isinstance(probe, Docker)]
    return usable[0] if usable else "; ".join(str(probe) for probe in found) or "no docker client found"


def _probe_docker(client: str, run: Runner) -> Docker | str:
    versions = run([client, "version", "--format", "{{.Server.Version}} {{.Client.Version}}"])
    if versions.returncode != 0:
        return f"{client}: no daemon answers ({versions.tail() or 'exit ' + str(versions.returncode)})"
    server, _, client_text = versions.stdout.strip().partition(" ")
    version = _version(server)
    if version is None or version < MIN_DOCKER:
        return f"{client}: daemon {server} is older than {MIN_DOCKER}"
    buildx = run([client, "buildx", "version"])
    if buildx.returncode == 0:
        return Docker(client, version, "buildx", buildx_version=buildx_version(buildx.stdout))
    client_version = _version(client_text)
    if client_version is not None and client_version < Version("23"):
        return Docker(client, version, "builtin")
    return f"{client}: client {client_version} needs the buildx plugin for BuildKit and has none"


def buildx_version(text: str) -> Version | None:
    """`docker buildx version` prints e.g. `github.com/docker/buildx v0.17.1 cdaf...`."""
    words = text.split()
    return _version(words[1]) if len(words) > 1 else None


def detect_buildah(run: Runner = process.run, client: str | None = None) -> Buildah | str:
    client = client or shutil.which("buildah")
    if client is None:
        return "buildah is not installed"
    result = run([client, "version", "--json"])
    try:
        version = _version(json.loads(result.stdout)["version"]) if result.returncode == 0 else None
    except (ValueError, KeyError, TypeError):
        version = None
    if version is None:
        return f"{client}: cannot read its version ({result.tail()})"
    if version < MIN_BUILDAH:
        return f"{client}: version {version} is older than {MIN_BUILDAH}"
    return Buildah(client, version)


def select_engine(
    wanted: Literal["auto", "docker", "buildah"], run: Runner = process.run, builder: str | None = None
) -> Engine:
    """The engine to build with; a missing or too old engine is exit 3 with how to get one. With
    `builder` (a buildx builder instance), docker with buildx, and that builder must exist."""
    if builder is not None:
        return _buildx_builder(wanted, builder, run)
    reasons = []
    if wanted in ("auto", "docker"):
        docker = detect_docker(docker_clients(), run)
        if not isinstance(docker, str):
            return docker
        reasons.append(f"docker: {docker}")
    if wanted in ("auto", "buildah"):
        buildah = detect_buildah(run)
        if not isinstance(buildah, str):
            return buildah
        reasons.append(f"buildah: {buildah}")
    raise UpstreamUnavailable(f"no usable container engine ({'; '.join(reasons)})", hint=INSTALL_HINT)


def _buildx_builder(wanted: Literal["auto", "docker", "buildah"], builder: str, run: Runner) -> Docker:
    if wanted == "buildah":
        raise UsageError(f"--builder {builder} names a buildx builder; it needs --engine docker (or auto), not buildah")
    docker = detect_docker(docker_clients(), run)
    if isinstance(docker, str):
        raise UpstreamUnavailable(f"--builder {builder} needs docker with buildx ({docker})", hint=BUILDX_HINT)
    if docker.mode != "buildx":
        raise UpstreamUnavailable(
            f"--builder {builder} needs docker buildx, and {docker.client} has no buildx plugin", hint=BUILDX_HINT
        )
    engine = replace(docker, builder=builder)
    found = run(engine.inspect_builder_argv())
    if found.returncode != 0:
        raise UpstreamUnavailable(
            f"buildx has no builder '{builder}' ({found.tail() or 'exit ' + str(found.returncode)})",
            hint="docker buildx ls lists the builders; docs/fleet.md shows how to create one",
        )
    return engine


# ---------------------------------------------------------------- cross-architecture builds


def host_arch() -> str:
    return HOST_ARCH.get(host_platform.machine(), host_platform.machine())


def emulation_problem(target_arch: str, host: str, binfmt_dir: Path = Path("/proc/sys/fs/binfmt_misc")) -> str | None:
    """Why `target_arch` images cannot be built on `host` (None when they can: native or qemu binfmt)."""
    if target_arch == host:
        return None
    name = QEMU_NAME.get(target_arch)
    if name is None:
        return f"no emulator is known for {target_arch}"
    entry = binfmt_dir / name
    try:
        enabled = entry.read_text().splitlines()[0].strip() == "enabled"
    except (OSError, IndexError):
        enabled = False
    if not enabled:
        return (
            f"building linux/{target_arch} images on a {host} host needs qemu binfmt support ({entry} is missing or "
            "disabled): apt-get install qemu-user-static binfmt-support, then update-binfmts --enable"
        )
    return None
