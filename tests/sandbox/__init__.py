"""The offline end-to-end sandbox: real stand-ins for NGC, the Jetson AI Lab index and GitHub.

`tests/sandbox/up` (idempotent) makes Debian 12 stand-in base images for arm64 and amd64 with
mmdebstrap from this machine's apt sources (cached between runs), pushes them to Debian's
docker-registry as multi-arch images, serves stand-in wheels with pypiserver and the C-extension's
git repository over HTTP, and prints `export` lines. `tests/sandbox/down` stops the servers.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from builder.build.engines import host_arch
from tests.standins import git_repo, make_wheel, wait_for

HERE = Path(__file__).resolve().parent
CATALOGUE = HERE / "catalogue"
STACK = "sandbox"
TARGETS = ["standin-arm64/debian12-cu126", "standin-amd64/debian12-cu126"]
ARCHES = ["arm64", "amd64"]
# Only what the rendered stages need, docs left out: the bases stay small under vfs storage.
PACKAGES = {
    "runtime": ["python3.11-venv", "ca-certificates"],
    "devel": ["python3.11-venv", "python3.11-dev", "gcc", "libc6-dev", "git", "ca-certificates", "ccache"],
}
BUILD_TOOLS = ["setuptools", "wheel"]
SOURCES = ["standin-ext", "standin-tool"]  # source-built recipes' repositories, served by the git stand-in
EXCLUDES = ["/usr/share/doc/*", "/usr/share/man/*", "/usr/share/locale/*", "/usr/share/info/*"]


def state_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "builder-sandbox"
    return Path(os.environ.get("BUILDER_SANDBOX_DIR", default))


@dataclass(frozen=True)
class Ports:
    registry: int = int(os.environ.get("BUILDER_SANDBOX_REGISTRY_PORT", "5555"))
    index: int = int(os.environ.get("BUILDER_SANDBOX_INDEX_PORT", "5556"))
    git: int = int(os.environ.get("BUILDER_SANDBOX_GIT_PORT", "5557"))


def log(message: str) -> None:
    print(f"sandbox: {message}", file=sys.stderr, flush=True)


class SandboxError(Exception):
    """A stand-in could not be made or started: one line naming the tool and why."""


def run_tool(argv: list[str], hint: str = "") -> None:
    """Run a tool quietly; on failure, raise with its last error line (and how to fix it, if known)."""
    try:
        result = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    except FileNotFoundError:
        raise SandboxError(f"{argv[0]}: not installed{hint and '; ' + hint}") from None
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        reason = next((line for line in reversed(lines) if line.startswith("E:")), lines[-1] if lines else "")
        raise SandboxError(f"{argv[0]} failed (exit {result.returncode}): {reason.strip()}{hint and '; ' + hint}")


# ---------------------------------------------------------------- base images


def base_tarball(state: Path, kind: str, arch: str) -> Path:
    """A root filesystem made by mmdebstrap from this machine's apt sources (cached by its package list)."""
    recipe = hashlib.sha256(json.dumps([PACKAGES[kind], EXCLUDES]).encode()).hexdigest()[:12]
    tarball = state / "bases" / f"{kind}-{arch}-{recipe}.tar"
    if tarball.exists():
        return tarball
    tarball.parent.mkdir(parents=True, exist_ok=True)
    partial = tarball.with_suffix(".partial.tar")
    argv = ["mmdebstrap", f"--arch={arch}", "--variant=minbase", f"--include={','.join(PACKAGES[kind])}"]
    argv += [f"--dpkgopt=path-exclude={pattern}" for pattern in EXCLUDES]
    argv += ["bookworm", str(partial)]  # no mirror given: mmdebstrap takes the host's apt sources
    log(f"making the {kind} base for {arch} with mmdebstrap (once; cached in {tarball.parent})")
    hint = "install mmdebstrap, arch-test and qemu-user-static (apt)" if arch != host_arch() else ""
    try:
        run_tool(argv, hint)
        partial.rename(tarball)
    finally:
        partial.unlink(missing_ok=True)
    return tarball


def _put(url: str, data: bytes, content_type: str) -> None:
    request = urllib.request.Request(url, data=data, method="PUT", headers={"Content-Type": content_type})
    urllib.request.urlopen(request, timeout=300).close()


def _blob(registry: str, repository: str, data: bytes) -> dict[str, object]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    head = urllib.request.Request(f"{registry}/v2/{repository}/blobs/{digest}", method="HEAD")
    with contextlib.suppress(urllib.error.HTTPError):
        urllib.request.urlopen(head, timeout=30).close()
        return {"digest": digest, "size": len(data)}
    post = urllib.request.Request(f"{registry}/v2/{repository}/blobs/uploads/", method="POST")
    with urllib.request.urlopen(post, timeout=30) as response:
        location = response.headers["Location"]
    location = location if location.startswith("http") else registry + location
    _put(f"{location}{'&' if '?' in location else '?'}digest={digest}", data, "application/octet-stream")
    return {"digest": digest, "size": len(data)}


def push_base(registry: str, repository: str, tag: str, tarballs: dict[str, Path]) -> str:
    """Push one single-layer image per arch and an OCI index over them; returns the index digest."""
    manifests = []
    for arch, tarball in sorted(tarballs.items()):
        raw = tarball.read_bytes()
        layer = _blob(registry, repository, gzip.compress(raw, compresslevel=1, mtime=0))
        config = {
            "architecture": arch,
            "os": "linux",
            "config": {
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Cmd": ["/bin/bash"],
            },
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]},
            # buildah checks that history lists one entry per layer before committing on top.
            "history": [{"created": "2026-01-01T00:00:00Z", "created_by": f"mmdebstrap {tarball.stem}"}],
        }
        config_blob = _blob(registry, repository, json.dumps(config, sort_keys=True).encode())
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config_blob},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **layer}],
            },
            sort_keys=True,
        ).encode()
        digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        _put(f"{registry}/v2/{repository}/manifests/{digest}", manifest, "application/vnd.oci.image.manifest.v1+json")
        manifests.append(
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": digest,
                "size": len(manifest),
                "platform": {"architecture": arch, "os": "linux"},
            }
        )
    index = json.dumps(
        {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests},
        sort_keys=True,
    ).encode()
    _put(f"{registry}/v2/{repository}/manifests/{tag}", index, "application/vnd.oci.image.index.v1+json")
    return "sha256:" + hashlib.sha256(index).hexdigest()


def build_tools(wheels: Path) -> None:
    """What builder stages pip-install to build the C extension (with its dependencies), served by
    the stand-in index so builds need no other index (fetched once through this machine's pip)."""
    marker = wheels / ".build-tools"
    if marker.exists() and marker.read_text().split() == BUILD_TOOLS:
        return
    log(f"fetching {', '.join(BUILD_TOOLS)} wheels for the stand-in index (once)")
    argv = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "-d", str(wheels)]
    run_tool([*argv, *BUILD_TOOLS])
    marker.write_text(" ".join(BUILD_TOOLS) + "\n")


# ---------------------------------------------------------------- servers


def _alive(pidfile: Path) -> bool:
    try:
        os.kill(int(pidfile.read_text()), 0)
    except (OSError, ValueError):
        return False
    return True


def _start(name: str, argv: list[str], state: Path, url: str) -> None:
    pidfile = state / "run" / f"{name}.pid"
    if _alive(pidfile):
        return
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    with (state / "run" / f"{name}.log").open("ab") as output:
        try:
            process = subprocess.Popen(argv, stdout=output, stderr=output, start_new_session=True)
        except FileNotFoundError:
            raise SandboxError(f"{argv[0]}: not installed (see .ci/run for the packages)") from None
    pidfile.write_text(str(process.pid))
    wait_for(url)
    log(f"{name} is up at {url}")


def exports(ports: Ports) -> dict[str, str]:
    registry = f"127.0.0.1:{ports.registry}"
    index = f"http://127.0.0.1:{ports.index}/simple/"
    args = [
        "--index", f"standin={index}",
        "--image-mirror", f"registry.sandbox.test=http://{registry}",
        "--git-mirror", f"https://git.sandbox.test=http://127.0.0.1:{ports.git}",
    ]  # fmt: skip
    return {
        "BUILDER_SANDBOX_REGISTRY": registry,
        "BUILDER_SANDBOX_INDEX": index,
        "BUILDER_SANDBOX_ROOT": str(CATALOGUE),
        "BUILDER_SANDBOX_STACK": STACK,
        "BUILDER_SANDBOX_TARGETS": " ".join(TARGETS),
        "BUILDER_SANDBOX_ARGS": " ".join(args),
    }


def up() -> dict[str, str]:
    state, ports = state_dir(), Ports()
    state.mkdir(parents=True, exist_ok=True)
    storage = state / "registry"
    config = state / "registry.yml"
    config.write_text(
        "version: 0.1\nlog: {level: error}\n"
        f"storage: {{filesystem: {{rootdirectory: {storage}}}, delete: {{enabled: true}}}}\n"
        f"http: {{addr: '127.0.0.1:{ports.registry}'}}\n"
    )
    _start("registry", ["docker-registry", "serve", str(config)], state, f"http://127.0.0.1:{ports.registry}/v2/")
    registry = f"http://127.0.0.1:{ports.registry}"
    for kind in ("runtime", "devel"):
        digest = push_base(
            registry, f"standin/{kind}", "bookworm", {arch: base_tarball(state, kind, arch) for arch in ARCHES}
        )
        log(f"standin/{kind}:bookworm is {digest} (arm64 and amd64)")
    wheels = state / "wheels"
    make_wheel(wheels, "standin-lib", "1.0.0", "py3-none-any")
    build_tools(wheels)
    _start(
        "index",
        [
            "pypi-server",
            "run",
            "-i",
            "127.0.0.1",
            "-p",
            str(ports.index),
            "--backend",
            "simple-dir",
            "--disable-fallback",
            "-a",
            ".",
            "-P",
            ".",
            str(wheels),
        ],
        state,
        f"http://127.0.0.1:{ports.index}/simple/",
    )
    repositories = state / "git"
    for name in SOURCES:
        publish_repository(repositories, state / "git-work" / name, name)
    _start(
        "git",
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(repositories), str(ports.git)],
        state,
        f"http://127.0.0.1:{ports.git}/",
    )
    return exports(ports)


def publish_repository(repositories: Path, work: Path, name: str) -> None:
    """tests/sandbox/<name> as a bare repository with a v1.0.0 tag, served over git's dumb HTTP
    protocol. Made again each time: fixed dates keep the commit the same."""
    bare = repositories / f"{name}.git"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(
        HERE / name, work, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "standin_ext_payload")
    )
    git_repo(work, ["v1.0.0"])
    staging = repositories / f".{name}.git"
    shutil.rmtree(staging, ignore_errors=True)
    run_tool(["git", "clone", "--quiet", "--bare", str(work), str(staging)])
    run_tool(["git", "-C", str(staging), "update-server-info"])  # the dumb HTTP protocol
    shutil.rmtree(bare, ignore_errors=True)
    staging.rename(bare)


def down() -> None:
    state = state_dir()
    for pidfile in sorted((state / "run").glob("*.pid")) if (state / "run").exists() else []:
        with contextlib.suppress(OSError, ValueError):
            os.killpg(int(pidfile.read_text()), signal.SIGTERM)
        pidfile.unlink()
        log(f"stopped {pidfile.stem}")
    time.sleep(0.5)


def main(argv: list[str]) -> int:
    if argv[:1] == ["up"]:
        try:
            exported = up()
        except (SandboxError, RuntimeError, OSError) as error:
            print(f"sandbox: error: {error}", file=sys.stderr)
            return 3
        for key, value in exported.items():
            print(f"export {key}={shlex.quote(value)}")
        return 0
    if argv[:1] == ["down"]:
        down()
        return 0
    print("usage: python -m tests.sandbox up|down", file=sys.stderr)
    return 2
