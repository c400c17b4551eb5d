"""Locking against real servers: pypiserver, Debian's docker-registry, a local git repository, uv."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import shutil
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURE, Result, run_cli
from tests.standins import Index, Registry, git_repo, make_wheel, push_image, sha256

pytestmark = pytest.mark.integration

NANO = "nano/jp6.2-cu126"
CARD = "card/ubuntu24.04-cu128"
IMAGES = [
    ("l4t-cuda", "12.6.11-runtime"),
    ("l4t-cuda", "12.6.11-devel"),
    ("cuda", "12.8.1-runtime"),
    ("cuda", "12.8.1-devel"),
]


@dataclass
class Upstreams:
    registry: Registry
    digests: dict[str, dict[str, str]]
    git: Path
    commits: dict[str, str]


@pytest.fixture(scope="session")
def upstreams(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstreams]:
    base = tmp_path_factory.mktemp("upstreams")
    commits = git_repo(base / "git" / "fastlib", ["v1.0.0", "v1.1.0"])
    with Registry.serve(base / "registry") as registry:
        digests = {f"{repo}:{tag}": push_image(registry.url, repo, tag) for repo, tag in IMAGES}
        yield Upstreams(registry, digests, base / "git", commits)


def standard_wheels(directory: Path) -> None:
    make_wheel(directory, "torch", "2.5.0", "cp310-cp310-linux_aarch64", ["filelock"])
    make_wheel(directory, "torch", "2.8.0", "cp310-cp310-linux_aarch64", ["filelock"])
    make_wheel(directory, "torch", "2.8.0", "cp312-cp312-linux_x86_64", ["filelock"])
    make_wheel(directory, "fastlib", "1.0.0+cu126", "cp310-cp310-linux_aarch64", ["torch>=2.5"])
    make_wheel(directory, "slowlib", "1.0", "py3-none-any")
    make_wheel(directory, "requests", "2.32.0", "py3-none-any")
    make_wheel(directory, "filelock", "3.0", "py3-none-any")
    make_wheel(directory, "setuptools", "75.0.0", "py3-none-any")  # a source build's own build requirements
    make_wheel(directory, "wheel", "0.45.0", "py3-none-any")


@dataclass
class Sandbox:
    root: Path
    wheels: Path
    index: Index
    upstreams: Upstreams
    extra: list[str] = field(default_factory=list)

    def args(self, index_url: str | None = None) -> list[str]:
        return [
            "--root", str(self.root),
            "--index", f"lab={index_url or self.index.url}",
            "--index", f"default={self.index.url}",
            "--image-mirror", f"registry.example={self.upstreams.registry.url}",
            "--git-mirror", f"https://git.example={self.upstreams.git.as_uri()}",
            "--cache-dir", str(self.root.parent / "cache"),
            *self.extra,
        ]  # fmt: skip

    def lock(self, *extra: str, index_url: str | None = None) -> Result:
        return run_cli("lock", "demo", *self.args(index_url), *extra)

    def locks(self, target: str = NANO) -> Path:
        return self.root / "locks" / "demo" / target

    def image_lock(self, target: str = NANO) -> dict[str, Any]:
        data = json.loads((self.locks(target) / "image-lock.json").read_text())
        assert isinstance(data, dict)
        return data

    def packages(self, target: str = NANO) -> dict[str, dict[str, Any]]:
        return {p["package"]: p for p in self.image_lock(target)["packages"]}


@pytest.fixture
def sandbox(tmp_path: Path, upstreams: Upstreams, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    root = tmp_path / "catalogue"
    shutil.copytree(FIXTURE, root)
    monkeypatch.chdir(root)
    wheels = tmp_path / "wheels"
    standard_wheels(wheels)
    with Index.serve(wheels) as index:
        yield Sandbox(root, wheels, index, upstreams)


def test_lock_writes_hashed_pylock_and_image_lock(sandbox: Sandbox) -> None:
    result = sandbox.lock()
    assert result.code == 0, result.err
    assert "locked demo on nano/jp6.2-cu126: 2 heavy packages (0 source builds)" in result.out
    packages = sandbox.packages()
    torch = packages["torch"]
    assert (torch["kind"], torch["version"], torch["filename"]) == (
        "wheel",
        "2.8.0",
        "torch-2.8.0-cp310-cp310-linux_aarch64.whl",
    )
    assert torch["sha256"] == sha256(sandbox.wheels / torch["filename"])
    assert packages["fastlib"]["version"] == "1.0.0+cu126"
    pylock = (sandbox.locks() / "pylock.toml").read_text()
    assert f'sha256 = "{torch["sha256"]}"' in pylock
    assert 'name = "requests"' in pylock and 'name = "filelock"' in pylock
    images = sandbox.image_lock()["base-images"]
    digests = sandbox.upstreams.digests["l4t-cuda:12.6.11-runtime"]
    assert images["runtime"]["digest"] == digests["arm64"]
    assert images["runtime"]["index_digest"] == digests["index"]
    inputs = sandbox.image_lock()["inputs"]["files"]
    assert set(inputs) >= {
        "stacks/demo.yaml",
        "matrix/nano/jp6.2-cu126.yaml",
        "recipes/torch.yaml",
        "recipes/fastlib.yaml",
    }
    # the x86 cell: its own platform, image digests and the fallback for fastlib
    card = sandbox.packages(CARD)
    assert card["torch"]["filename"] == "torch-2.8.0-cp312-cp312-linux_x86_64.whl"
    assert (card["fastlib"]["recipe"], card["fastlib"]["kind"], card["fastlib"]["version"]) == (
        "slowlib",
        "default",
        "1.0",
    )
    card_images = sandbox.image_lock(CARD)["base-images"]
    assert card_images["devel"]["digest"] == sandbox.upstreams.digests["cuda:12.8.1-devel"]["amd64"]


def test_locking_twice_gives_identical_bytes(sandbox: Sandbox) -> None:
    assert sandbox.lock().code == 0
    first = {p.name: p.read_bytes() for p in sandbox.locks().iterdir()}
    second_run = sandbox.lock()
    assert second_run.code == 0
    assert "(unchanged)" in second_run.out
    assert "keeping the locked environment" in second_run.err
    assert {p.name: p.read_bytes() for p in sandbox.locks().iterdir()} == first
    upgraded = sandbox.lock("--upgrade")  # uv resolves again from the same index contents
    assert upgraded.code == 0
    assert "resolving the environment with uv" in upgraded.err
    assert {p.name: p.read_bytes() for p in sandbox.locks().iterdir()} == first


def test_source_build_when_no_wheel(sandbox: Sandbox) -> None:
    (sandbox.wheels / "fastlib-1.0.0+cu126-cp310-cp310-linux_aarch64.whl").unlink()
    result = sandbox.lock("--target", NANO)
    assert result.code == 0, result.err
    fastlib = sandbox.packages()["fastlib"]
    assert (fastlib["kind"], fastlib["version"], fastlib["ref"]) == ("source", "1.0.0", "v1.0.0")
    assert fastlib["commit"] == sandbox.upstreams.commits["v1.0.0"]
    assert "no wheel on lab" in fastlib["why"] and "not on this index (HTTP 404)" in fastlib["why"]
    pylock = (sandbox.locks() / "pylock.toml").read_text()
    assert f'commit-id = "{sandbox.upstreams.commits["v1.0.0"]}"' in pylock
    assert 'url = "https://git.example/fastlib"' in pylock  # the upstream, not the mirror
    # The source build's own build requirements are locked too, with hashes, and recorded.
    build = (sandbox.locks() / "pylock.build-fastlib.toml").read_text()
    assert 'name = "setuptools"' in build and 'name = "wheel"' in build and "sha256 =" in build
    image_lock = json.loads((sandbox.locks() / "image-lock.json").read_text())
    assert image_lock["build-pylocks"] == {"fastlib": hashlib.sha256(build.encode()).hexdigest()}


def test_source_build_when_wheel_cuda_does_not_match(sandbox: Sandbox) -> None:
    (sandbox.wheels / "fastlib-1.0.0+cu126-cp310-cp310-linux_aarch64.whl").unlink()
    make_wheel(sandbox.wheels, "fastlib", "1.1.0+cu128", "cp310-cp310-linux_aarch64", ["torch"])
    result = sandbox.lock("--target", NANO)
    assert result.code == 0, result.err
    fastlib = sandbox.packages()["fastlib"]
    assert (fastlib["kind"], fastlib["version"], fastlib["commit"]) == (
        "source",
        "1.0.0",
        sandbox.upstreams.commits["v1.0.0"],
    )
    assert "built for another CUDA: 1.1.0+cu128" in fastlib["why"]


def test_plan_prints_the_decision_table(sandbox: Sandbox) -> None:
    live = run_cli("plan", "demo", "--target", NANO, *sandbox.args())
    assert live.code == 0, live.err
    assert live.out.splitlines()[0] == "decisions from resolved now (there is no lock yet)"
    assert live.out.splitlines()[1].split() == ["PACKAGE", "WANTED", "CHOSEN", "FROM", "WHY"]
    assert sandbox.lock().code == 0
    locked = json.loads(run_cli("plan", "demo", "--target", NANO, "--json", *sandbox.args()).out)
    assert locked["from"].startswith("lock ")
    assert [(p["package"], p["kind"], p["version"]) for p in locked["packages"]] == [
        ("torch", "wheel", "2.8.0"),
        ("fastlib", "wheel", "1.0.0+cu126"),
    ]


# ---------------------------------------------------------------- drift and integrity


def test_check_passes_on_a_fresh_lock_and_fails_without_one(sandbox: Sandbox) -> None:
    missing = sandbox.lock("--check")
    assert missing.code == 1
    assert f"{NANO}: no lock for demo on {NANO} at" in missing.err
    assert sandbox.lock().code == 0
    current = sandbox.lock("--check")
    assert (current.code, current.err) == (0, ""), current.err
    assert f"lock of demo on {NANO} is current" in current.out


def test_check_names_the_changed_input(sandbox: Sandbox) -> None:
    assert sandbox.lock().code == 0
    stack = sandbox.root / "stacks/demo.yaml"
    stack.write_text(stack.read_text().replace("MODE: fast", "MODE: faster"))
    result = sandbox.lock("--check")
    assert result.code == 1
    assert (
        f"error: the lock of demo is out of date: {NANO}: input stacks/demo.yaml changed since the lock" in result.err
    )


def test_check_reports_index_drift(sandbox: Sandbox) -> None:
    assert sandbox.lock().code == 0
    make_wheel(sandbox.wheels, "torch", "2.9.0", "cp310-cp310-linux_aarch64", ["filelock"])
    result = sandbox.lock("--check", "--target", NANO)
    assert result.code == 1
    assert "torch: the lock has wheel 2.8.0, resolving now gives wheel 2.9.0" in result.err


def test_rehashed_wheel_is_refused_with_both_hashes(sandbox: Sandbox) -> None:
    assert sandbox.lock("--target", NANO).code == 0
    name = "torch-2.8.0-cp310-cp310-linux_aarch64.whl"
    old = sha256(sandbox.wheels / name)
    (sandbox.wheels / name).unlink()
    new = sha256(
        make_wheel(sandbox.wheels, "torch", "2.8.0", "cp310-cp310-linux_aarch64", ["filelock"], payload="# rebuilt\n")
    )
    assert old != new
    check = sandbox.lock("--check", "--target", NANO)
    assert check.code == 1
    assert f"{name}: the index now serves sha256 {new}, the lock recorded sha256 {old}" in check.err
    relock = sandbox.lock("--target", NANO)
    assert relock.code == 1
    assert len(relock.errors) == 1
    assert relock.errors[0].startswith(
        f"error: {name}: the index now serves sha256 {new}, the lock recorded sha256 {old}"
    )


def test_check_reports_a_moved_image_tag(sandbox: Sandbox) -> None:
    assert sandbox.lock("--target", NANO).code == 0
    moved = push_image(sandbox.upstreams.registry.url, "l4t-cuda", "12.6.11-runtime", salt="rebuilt")
    try:
        result = sandbox.lock("--check", "--target", NANO)
        assert result.code == 1
        assert f"registry.example/l4t-cuda:12.6.11-runtime now points at {moved['arm64']}" in result.err
    finally:
        push_image(sandbox.upstreams.registry.url, "l4t-cuda", "12.6.11-runtime")


# ---------------------------------------------------------------- offline


def test_offline_uses_the_cache_and_fails_cleanly_without_it(sandbox: Sandbox) -> None:
    assert sandbox.lock().code == 0
    before = (sandbox.locks() / "pylock.toml").read_bytes()
    sandbox.index.process.terminate()
    sandbox.index.process.wait(10)
    offline = sandbox.lock("--offline")
    assert offline.code == 0, offline.err
    assert (sandbox.locks() / "pylock.toml").read_bytes() == before
    shutil.rmtree(sandbox.root.parent / "cache")
    cold = sandbox.lock("--offline")
    assert cold.code == 3
    assert cold.errors == [f"error: {sandbox.index.url}torch/: not in the cache and --offline forbids fetching it"]


# ---------------------------------------------------------------- unsatisfiable requests


def test_no_wheel_and_no_source_is_explained(sandbox: Sandbox) -> None:
    stack = sandbox.root / "stacks/demo.yaml"
    stack.write_text(
        stack.read_text().replace('{recipe: torch, version: ">=2.5"}', '{recipe: torch, version: "==2.6.0"}')
    )
    result = sandbox.lock("--target", NANO)
    assert result.code == 2
    assert result.errors == [
        f"stacks/demo.yaml:7:14: error: torch ==2.6.0 cannot be obtained for {NANO}: no wheel on lab ({sandbox.index.url}) "
        "matches '==2.6.0,>=2.5' for cp310 linux_aarch64 (glibc 2.35) (offers 2.8.0, 2.5.0)"
    ]


def test_heavy_packages_are_chosen_jointly(sandbox: Sandbox) -> None:
    """torch 2.8.0 is the newest, but fastlib (the only one offered) wants 2.5.0: the resolver takes 2.5.0."""
    (sandbox.wheels / "fastlib-1.0.0+cu126-cp310-cp310-linux_aarch64.whl").unlink()
    make_wheel(sandbox.wheels, "fastlib", "1.0.0+cu126", "cp310-cp310-linux_aarch64", ["torch==2.5.0"])
    result = sandbox.lock("--target", NANO)
    assert result.code == 0, result.err
    torch = sandbox.packages()["torch"]
    assert (torch["kind"], torch["version"]) == ("wheel", "2.5.0")
    assert "2.8.0 also offered" in torch["why"]
    table = run_cli("plan", "demo", "--target", NANO, *sandbox.args())
    assert "2.5.0 (torch-2.5.0-cp310-cp310-linux_aarch64.whl)" in table.out and "2.8.0 also offered" in table.out


def test_conflict_names_who_asked(sandbox: Sandbox) -> None:
    for version in ("2.5.0", "2.8.0"):  # every torch now needs a filelock no index has
        (sandbox.wheels / f"torch-{version}-cp310-cp310-linux_aarch64.whl").unlink()
        make_wheel(sandbox.wheels, "torch", version, "cp310-cp310-linux_aarch64", ["filelock>=9"])
    result = sandbox.lock("--target", NANO)
    assert result.code == 2
    assert len(result.errors) == 1
    line = result.errors[0]
    assert line.startswith("error: no environment satisfies every requirement:")
    assert "filelock>=9" in line
    assert "stacks/demo.yaml:7:14 asks for torch >=2.5 (offered: 2.8.0, 2.5.0)" in line


def test_pinned_package_never_comes_from_another_index(sandbox: Sandbox) -> None:
    make_wheel(sandbox.wheels, "needs-fastlib", "1.0", "py3-none-any", ["fastlib"])
    stack = sandbox.root / "stacks/demo.yaml"
    text = stack.read_text().replace("  - recipe: fastlib\n    fallback:\n      - {recipe: slowlib}\n", "")
    stack.write_text(text.replace("  - requests>=2", "  - requests>=2\n  - needs-fastlib"))
    result = sandbox.lock("--target", NANO)
    assert result.code == 2
    assert "pulls in fastlib 1.0.0+cu126 from the default index, but recipes/fastlib.yaml pins it to lab" in result.err


# ---------------------------------------------------------------- faults on the wire


class _Faulty(http.server.BaseHTTPRequestHandler):
    upstream: str
    mode: str
    seen: list[str]

    def do_HEAD(self) -> None:
        self.do_GET(head=True)

    def do_GET(self, head: bool = False) -> None:
        self.seen.append(self.path)
        if self.mode == "500" or (self.mode == "500-twice" and len(self.seen) <= 2):
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.mode == "slow":
            time.sleep(2.5)
        with urllib.request.urlopen(self.upstream + self.path, timeout=10) as response:
            body = response.read()
            content_type = response.headers.get("Content-Type", "text/html")
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) + (500 if self.mode == "truncated" else 0)))
        self.end_headers()
        if not head:
            with contextlib.suppress(OSError):
                self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def faulty(index: Index, mode: str) -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []
    upstream = f"http://127.0.0.1:{index.port}"
    handler = type("Faulty", (_Faulty,), {"upstream": upstream, "mode": mode, "seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple/", seen
    finally:
        server.shutdown()
        server.server_close()


def test_server_errors_are_retried_then_reported(sandbox: Sandbox) -> None:
    with faulty(sandbox.index, "500") as (url, seen):
        result = sandbox.lock("--target", NANO, index_url=url)
    assert result.code == 3
    assert result.errors == [f"error: {url}torch/: still failing after 3 retries (HTTP 500)"]
    assert len(seen) == 4  # the first try and three retries


def test_transient_server_errors_recover(sandbox: Sandbox) -> None:
    with faulty(sandbox.index, "500-twice") as (url, seen):
        result = sandbox.lock("--target", NANO, index_url=url)
    assert result.code == 0, result.err
    assert seen[:3] == ["/simple/torch/"] * 3


def test_timeouts_are_reported(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUILDER_HTTP_TIMEOUT", "0.5")
    with faulty(sandbox.index, "slow") as (url, _):
        result = sandbox.lock("--target", NANO, index_url=url)
    assert result.code == 3
    assert len(result.errors) == 1
    assert result.errors[0].startswith(f"error: {url}torch/: timed out"), result.err


def test_truncated_responses_are_reported(sandbox: Sandbox) -> None:
    with faulty(sandbox.index, "truncated") as (url, seen):
        result = sandbox.lock("--target", NANO, index_url=url)
    assert result.code == 3
    assert len(result.errors) == 1
    assert result.errors[0].startswith(f"error: {url}torch/: truncated response"), result.err
    assert len(seen) == 4


def test_unreachable_registry_is_exit_3(sandbox: Sandbox) -> None:
    sandbox.extra = ["--image-mirror", "registry.example=http://127.0.0.1:9"]
    result = sandbox.lock("--target", NANO)
    assert result.code == 3
    assert len(result.errors) == 1
    assert result.errors[0].startswith(
        "error: http://127.0.0.1:9/v2/l4t-cuda/manifests/12.6.11-runtime: cannot connect"
    )


# ---------------------------------------------------------------- registry auth as NGC and Docker Hub do it


def test_anonymous_bearer_token_auth(tmp_path: Path, sandbox: Sandbox) -> None:
    storage = sandbox.upstreams.registry.storage
    with Registry.serve(tmp_path / "authed", token_auth=True, storage=storage) as authed:
        anonymous = urllib.request.Request(f"{authed.url}/v2/l4t-cuda/manifests/12.6.11-runtime")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(anonymous, timeout=10)
        with refused.value:
            assert refused.value.code == 401
            assert "Bearer" in refused.value.headers["WWW-Authenticate"]
        sandbox.extra = ["--image-mirror", f"registry.example={authed.url}"]
        result = sandbox.lock("--target", NANO)
        assert result.code == 0, result.err
        assert "repository:l4t-cuda:pull" in authed.issued_tokens
        runtime = sandbox.image_lock()["base-images"]["runtime"]
        assert runtime["digest"] == sandbox.upstreams.digests["l4t-cuda:12.6.11-runtime"]["arm64"]


# ---------------------------------------------------------------- PEP 691 JSON indexes


class _JsonIndex(http.server.BaseHTTPRequestHandler):
    """A PEP 691 index over a directory of wheels; the files themselves are pypiserver's."""

    wheels: Path
    files: str

    def do_GET(self) -> None:
        name = self.path.strip("/").split("/")[-1]
        entries = [
            {"filename": w.name, "url": f"{self.files}{w.name}", "hashes": {"sha256": sha256(w)}}
            for w in sorted(self.wheels.glob("*.whl"))
            if w.name.split("-")[0].replace("_", "-") == name
        ]
        body = json.dumps({"meta": {"api-version": "1.1"}, "name": name, "files": entries}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.pypi.simple.v1+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_json_simple_api(sandbox: Sandbox) -> None:
    files = f"http://127.0.0.1:{sandbox.index.port}/packages/"
    handler = type("JsonIndex", (_JsonIndex,), {"wheels": sandbox.wheels, "files": files})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/simple/"
        result = sandbox.lock("--target", NANO, index_url=url)
    finally:
        server.shutdown()
        server.server_close()
    assert result.code == 0, result.err
    torch = sandbox.packages()["torch"]
    assert torch["url"] == f"{files}torch-2.8.0-cp310-cp310-linux_aarch64.whl"
    assert torch["sha256"] == sha256(sandbox.wheels / "torch-2.8.0-cp310-cp310-linux_aarch64.whl")
