"""Real servers standing in for the Jetson AI Lab index, NGC and GitHub, on loopback.

- `Index`: pypiserver serving stand-in wheels named as on the Jetson AI Lab index.
- `Registry`: Debian's docker-registry, optionally behind anonymous bearer-token auth (the token
  issuer here signs JWTs the registry verifies, as NGC's and Docker Hub's do).
- `push_image`: pushes a small multi-arch image (an OCI index over arm64 and amd64 manifests).
- `git_repo`: a local repository with tags, standing in for a source build's upstream.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.server
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import threading
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

# ---------------------------------------------------------------- wheels


def make_wheel(
    directory: Path, name: str, version: str, tag: str, requires: Sequence[str] = (), payload: str = ""
) -> Path:
    """A minimal valid wheel; `payload` changes its bytes without changing its name."""
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    files = {
        f"{dist}/__init__.py": f"__version__ = {version!r}\n{payload}",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        + "".join(f"Requires-Dist: {requirement}\n" for requirement in requires),
        f"{info}/WHEEL": f"Wheel-Version: 1.0\nGenerator: builder-tests\nRoot-Is-Purelib: false\nTag: {tag}\n",
    }
    record = []
    for path, content in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(content.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(content)}")
    files[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,"]) + "\n"
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / f"{dist}-{version}-{tag}.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, content in files.items():
            archive.writestr(zipfile.ZipInfo(path, (1980, 1, 1, 0, 0, 0)), content)
    return wheel


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- processes on free ports


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up within {seconds} s")


@dataclass
class Index:
    directory: Path
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/simple/"

    @classmethod
    @contextlib.contextmanager
    def serve(cls, directory: Path, *, fallback: bool = False, auth: tuple[str, str] | None = None) -> Iterator[Index]:
        """pypiserver on `directory`; `fallback` keeps its default configuration, which redirects
        names it does not have to the public index, as many team indexes are run; `auth` (user,
        password) makes listing and downloading need them, as a private index does."""
        directory.mkdir(parents=True, exist_ok=True)
        port = free_port()
        argv = [shutil.which("pypi-server") or "pypi-server", "run", "-i", "127.0.0.1", "-p", str(port)]
        argv += ["--backend", "simple-dir", "--hash-algo", "sha256"]
        if auth is None:
            argv += ["-a", ".", "-P", "."]
        else:
            user, password = auth  # an htpasswd {SHA} entry, which pypiserver reads through passlib
            passwords = directory.parent / f".htpasswd-{port}"
            digest = base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()
            passwords.write_text(f"{user}:{{SHA}}{digest}\n")
            argv += ["-a", "download,list,update", "-P", str(passwords)]
        if not fallback:
            argv.append("--disable-fallback")
        argv.append(str(directory))
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(f"http://127.0.0.1:{port}/simple/")
            yield cls(directory, port, process)
        finally:
            process.terminate()
            process.wait(10)


# ---------------------------------------------------------------- OCI registry


def _rsa_key_and_cert(directory: Path) -> tuple[object, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "builder-tests token issuer")])
    import datetime

    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    (directory / "issuer.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class _TokenIssuer(http.server.BaseHTTPRequestHandler):
    """Hands out pull tokens to anyone, like NGC's and Docker Hub's anonymous token endpoints."""

    key: object
    x5c: str
    issued: list[str]

    def do_GET(self) -> None:
        from urllib.parse import parse_qs, urlparse

        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        query = parse_qs(urlparse(self.path).query)
        scope = query.get("scope", [""])[0]
        _, repository, actions = [*scope.split(":"), "", "", ""][:3]
        now = int(time.time())
        claims = {
            "iss": "builder-tests",
            "sub": "",
            "aud": query.get("service", [""])[0],
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": os.urandom(8).hex(),
            "access": [{"type": "repository", "name": repository, "actions": ["pull"]}] if "pull" in actions else [],
        }
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())  # type: ignore[attr-defined]
        token = f"{signing_input}.{_b64url(signature)}"
        self.issued.append(scope)
        body = json.dumps({"token": token, "access_token": token, "expires_in": 300}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class Registry:
    port: int
    process: subprocess.Popen[bytes]
    issued_tokens: list[str]
    storage: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @classmethod
    @contextlib.contextmanager
    def serve(cls, directory: Path, *, token_auth: bool = False, storage: Path | None = None) -> Iterator[Registry]:
        """A registry on a free port; `storage` shares another registry's blobs and manifests."""
        directory.mkdir(parents=True, exist_ok=True)
        storage = storage or directory / "data"
        port = free_port()
        config = [
            "version: 0.1",
            "log: {level: error}",
            f"storage: {{filesystem: {{rootdirectory: {storage}}}, delete: {{enabled: true}}}}",
            f"http: {{addr: '127.0.0.1:{port}'}}",
        ]
        issued: list[str] = []
        issuer = None
        if token_auth:
            key, x5c = _rsa_key_and_cert(directory)
            handler = type("Issuer", (_TokenIssuer,), {"key": key, "x5c": x5c, "issued": issued})
            issuer = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
            threading.Thread(target=issuer.serve_forever, daemon=True).start()
            realm = f"http://127.0.0.1:{issuer.server_address[1]}/token"
            config.append(
                f"auth: {{token: {{realm: '{realm}', service: 'builder-tests', issuer: 'builder-tests', "
                f"rootcertbundle: '{directory / 'issuer.pem'}'}}}}"
            )
        (directory / "config.yml").write_text("\n".join(config) + "\n")
        process = subprocess.Popen(
            [shutil.which("docker-registry") or "docker-registry", "serve", str(directory / "config.yml")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(f"http://127.0.0.1:{port}/v2/")
            yield cls(port, process, issued, storage)
        finally:
            process.terminate()
            process.wait(10)
            if issuer is not None:
                issuer.shutdown()
                issuer.server_close()


def _request(
    method: str, url: str, data: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(url, data=data or None, method=method, headers=headers or {})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, dict(response.headers)


def _push_blob(base: str, repository: str, data: bytes) -> dict[str, object]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    _, headers = _request("POST", f"{base}/v2/{repository}/blobs/uploads/")
    location = headers["Location"]
    location = location if location.startswith("http") else base + location
    separator = "&" if "?" in location else "?"
    _request("PUT", f"{location}{separator}digest={digest}", data, {"Content-Type": "application/octet-stream"})
    return {"digest": digest, "size": len(data)}


def _layer(text: str) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        content = text.encode()
        info = tarfile.TarInfo("etc/standin-release")
        info.size, info.mtime = len(content), 0
        archive.addfile(info, io.BytesIO(content))
    import gzip

    return gzip.compress(raw.getvalue(), mtime=0)


def push_image(registry_url: str, repository: str, tag: str, *, salt: str = "") -> dict[str, str]:
    """Push a two-platform image; returns {'index': digest, 'arm64': digest, 'amd64': digest}."""
    digests: dict[str, str] = {}
    entries = []
    for arch in ("arm64", "amd64"):
        layer_bytes = _layer(f"{repository}:{tag} {arch} {salt}\n")
        layer = _push_blob(registry_url, repository, layer_bytes)
        diff_id = "sha256:" + hashlib.sha256(__import__("gzip").decompress(layer_bytes)).hexdigest()
        config_bytes = json.dumps(
            {"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff_id]}, "config": {}},
            sort_keys=True,
        ).encode()
        config = _push_blob(registry_url, repository, config_bytes)
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **layer}],
            },
            sort_keys=True,
        ).encode()
        digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        _request(
            "PUT",
            f"{registry_url}/v2/{repository}/manifests/{digest}",
            manifest,
            {"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        )
        digests[arch] = digest
        entries.append(
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": digest,
                "size": len(manifest),
                "platform": {"architecture": arch, "os": "linux"},
            }
        )
    index = json.dumps(
        {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries},
        sort_keys=True,
    ).encode()
    _request(
        "PUT",
        f"{registry_url}/v2/{repository}/manifests/{tag}",
        index,
        {"Content-Type": "application/vnd.oci.image.index.v1+json"},
    )
    digests["index"] = "sha256:" + hashlib.sha256(index).hexdigest()
    return digests


# ---------------------------------------------------------------- git


def git_repo(directory: Path, tags: Sequence[str]) -> dict[str, str]:
    """A repository with one commit per tag; returns tag -> commit."""
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",  # fixed, so commits (and goldens) are reproducible
        "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
    }

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=directory, env=env, check=True, capture_output=True, text=True
        ).stdout.strip()

    directory.mkdir(parents=True, exist_ok=True)
    git("init", "-q", "-b", "main")
    commits = {}
    for tag in tags:
        (directory / "VERSION").write_text(tag + "\n")
        git("add", "-A")
        git("commit", "-q", "-m", tag)
        git("tag", "-a", tag, "-m", tag)  # annotated, as upstream release tags are
        commits[tag] = git("rev-parse", "HEAD")
    return commits


# ---------------------------------------------------------------- the real catalogue's Orin cells

JETSON_TAG = "cp310-cp310-linux_aarch64"
TORCH_REQUIRES = ["filelock", "typing-extensions>=4.10.0", "sympy>=1.13.3", "networkx", "jinja2", "fsspec"]
XFORMERS = "0.0.32+8ed0992.d20250724"
# Named as on the Jetson AI Lab jp6/cu126 index (docs/sources.md JC-4.11), and as messy: several
# generations side by side (a torch 2.9.1 beside the vllm builds that need torch 2.8.0), and a
# transitive dependency (xformers) that only this index carries for aarch64.
JETSON_WHEELS = [
    ("torch", "2.8.0", TORCH_REQUIRES),
    ("torch", "2.9.1", TORCH_REQUIRES),
    ("torchaudio", "2.8.0", ["torch==2.8.0"]),
    ("torchaudio", "2.9.1", ["torch==2.9.1"]),
    ("torchvision", "0.23.0", ["torch==2.8.0", "numpy", "pillow>=5.3.0,!=8.3.*"]),
    ("torchvision", "0.24.1", ["torch==2.9.1", "numpy", "pillow>=5.3.0,!=8.3.*"]),
    ("triton", "3.4.0", ["setuptools>=40.8.0"]),
    ("triton", "3.5.0", ["setuptools>=40.8.0"]),
    ("xformers", XFORMERS, ["torch==2.8.0", "numpy"]),
    (
        "vllm",
        "0.10.2+cu126",
        ["torch==2.8.0", f"xformers=={XFORMERS}", "transformers>=4.55.2", "flashinfer-python==0.3.1"],
    ),
    (
        "vllm",
        "0.11.0+cu126",
        ["torch==2.8.0", f"xformers=={XFORMERS}", "transformers>=4.56.0", "flashinfer-python==0.3.1"],
    ),
    ("onnxruntime-gpu", "1.23.0", ["numpy>=1.21.6", "protobuf", "packaging", "flatbuffers", "coloredlogs"]),
    ("torchcodec", "0.7.0", []),
    ("torch-tensorrt", "2.8.0+cu126", ["torch==2.8.0", "numpy", "packaging"]),
]
# Thor (sbsa/cu130, cp312) and the RTX PRO 4000 cell (amd64/cu128, cp312) for the forge stacks.
OTHER_WHEELS = [
    (
        "torch",
        "2.9.0",
        "cp312-cp312-linux_aarch64",
        ["filelock", "typing-extensions>=4.10.0", "sympy>=1.13.3", "networkx", "jinja2", "fsspec"],
    ),
    (
        "torch",
        "2.8.0",
        "cp312-cp312-linux_x86_64",
        ["filelock", "typing-extensions>=4.10.0", "sympy>=1.13.3", "networkx", "jinja2", "fsspec"],
    ),
    ("tensorrt-llm", "1.1.0", "cp312-cp312-linux_aarch64", ["torch", "flashinfer-python", "transformers"]),
    ("tensorrt-llm", "1.0.0", "cp312-cp312-linux_x86_64", ["torch", "flashinfer-python", "transformers"]),
    ("flashinfer-python", "0.5.2", "py3-none-any", ["torch", "numpy"]),
]
JETSON_IMAGES = [
    ("nvidia/l4t-tensorrt", "r10.3.0-runtime"),
    ("nvidia/l4t-tensorrt", "r10.3.0-devel"),
    ("nvidia/cuda", "13.0.0-cudnn-runtime-ubuntu24.04"),
    ("nvidia/cuda", "13.0.0-cudnn-devel-ubuntu24.04"),
    ("nvidia/cuda", "12.8.1-cudnn-runtime-ubuntu24.04"),
    ("nvidia/cuda", "12.8.1-cudnn-devel-ubuntu24.04"),
]
SOURCE_REPOS = {"OpenNMT/CTranslate2": ["v4.6.0", "v4.7.1"]}


@dataclass
class JetsonUpstreams:
    index: Index
    registry: Registry
    git: Path

    def lock_args(self) -> list[str]:
        """The options that point the real catalogue's upstreams at these stand-ins."""
        return [
            "--index", f"jetson-ai-lab={self.index.url}",
            "--image-mirror", f"nvcr.io={self.registry.url}",
            "--git-mirror", f"https://github.com={self.git.as_uri()}",
        ]  # fmt: skip


@contextlib.contextmanager
def jetson_upstreams(base: Path, *, fallback: bool = False) -> Iterator[JetsonUpstreams]:
    """Stand-ins for the Jetson AI Lab index, NGC and GitHub as the Orin cells use them; with
    `fallback` the index redirects names it lacks to the public index (pypiserver's default)."""
    for name, version, requires in JETSON_WHEELS:
        make_wheel(base / "wheels", name, version, JETSON_TAG, requires)
    for name, version, tag, requires in OTHER_WHEELS:
        make_wheel(base / "wheels", name, version, tag, requires)
    for repository, tags in SOURCE_REPOS.items():
        git_repo(base / "git" / repository, tags)
    with Index.serve(base / "wheels", fallback=fallback) as index, Registry.serve(base / "registry") as registry:
        for repository, tag in JETSON_IMAGES:
            push_image(registry.url, repository, tag)
        yield JetsonUpstreams(index, registry, base / "git")


# The H200 reference cell (amd64/cu130, cp312): torch and Triton declaring no requirements, so the lock
# pins nothing else of the environment `build smoke --here` runs in (the device's own Python).
H200_WHEELS = [
    ("torch", "2.11.0", "cp312-cp312-linux_x86_64"),
    ("triton", "3.6.0", "cp312-cp312-linux_x86_64"),
]
H200_IMAGES = [("nvidia/cuda", "13.0.0-cudnn-runtime-ubuntu24.04"), ("nvidia/cuda", "13.0.0-cudnn-devel-ubuntu24.04")]


@contextlib.contextmanager
def h200_upstreams(base: Path) -> Iterator[JetsonUpstreams]:
    """Stand-ins for the H200 cell's index and base images; the index is also the default index."""
    for name, version, tag in H200_WHEELS:
        make_wheel(base / "wheels", name, version, tag)
    with Index.serve(base / "wheels") as index, Registry.serve(base / "registry") as registry:
        for repository, tag in H200_IMAGES:
            push_image(registry.url, repository, tag)
        yield JetsonUpstreams(index, registry, base / "git")


def main() -> None:
    """Serve the Orin stand-ins until Ctrl-C and print the options that point `build lock` at them."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="builder-standins-") as scratch, jetson_upstreams(Path(scratch)) as up:
        print("stand-ins are up; lock against them with:")
        print("  build lock maie-jetson --target orin-nano-super/jp6.2-cu126 " + " ".join(up.lock_args()), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
