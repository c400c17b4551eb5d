"""Credentials in an index URL reach the index and nothing else: not the locks, renders, caches,
memos, progress, output or error messages of lock, plan and render (the build's side is in
test_stack_e2e, which also looks inside the image's layers)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import FIXTURE, Result, run_cli
from tests.standins import Index
from tests.test_lock import NANO, Upstreams, standard_wheels
from tests.test_lock import upstreams as upstreams  # the fixture, shared with test_lock

pytestmark = pytest.mark.integration
SECRET = "s3cret-Zq9-do-not-print"


def files_holding(directory: Path, secret: str) -> list[str]:
    return sorted(str(p) for p in directory.rglob("*") if p.is_file() and secret.encode() in p.read_bytes())


def test_index_credentials_never_leave_the_network(
    tmp_path: Path, upstreams: Upstreams, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "catalogue"
    shutil.copytree(FIXTURE, root)
    monkeypatch.chdir(root)
    wheels = tmp_path / "wheels"
    standard_wheels(wheels)
    (wheels / "fastlib-1.0.0+cu126-cp310-cp310-linux_aarch64.whl").unlink()  # a source build too
    with Index.serve(wheels, auth=("builder", SECRET)) as index:
        url = f"http://builder:{SECRET}@127.0.0.1:{index.port}/simple/"
        common = [
            "--root", str(root), "--index", f"lab={url}", "--index", f"default={url}",
            "--image-mirror", f"registry.example={upstreams.registry.url}",
            "--git-mirror", f"https://git.example={upstreams.git.as_uri()}",
            "--cache-dir", str(tmp_path / "cache"),
        ]  # fmt: skip
        target = ["--target", NANO]
        results: list[Result] = [
            run_cli("lock", "demo", *target, *common),
            run_cli("lock", "demo", *target, "--check", *common),
            run_cli("lock", "demo", *target, "--json", *common),
            run_cli("plan", "demo", *target, *common),
            run_cli("plan", "demo", *target, "--json", *common),
            run_cli("render", "demo", *target, "--out", str(tmp_path / "out"), *common),
        ]
        assert [r.code for r in results] == [0] * len(results), [r.err for r in results]
        # The credentials did reach the index: it refuses anyone without them.
        lock = (root / "locks" / "demo" / NANO / "pylock.toml").read_text()
        assert f"127.0.0.1:{index.port}/packages/torch-2.8.0" in lock
        failing = [
            run_cli("lock", "demo", *target, *[a.replace(f":{index.port}/", ":9/") for a in common], "--upgrade"),
            run_cli("lock", "demo", *target, "--index", f"lab=http://builder:{SECRET}@127.0.0.1:9/simple/"),
            run_cli("stack", "demo", *target, "--publish-wheels", f"ftp://builder:{SECRET}@host/"),
        ]
        assert all(r.code in (2, 3) for r in failing), [r.err for r in failing]
        assert any("builder:***@" in r.err for r in failing)
    for result in [*results, *failing]:
        assert SECRET not in result.out and SECRET not in result.err
    assert files_holding(tmp_path, SECRET) == [], "a credential was written to disk"
    assert files_holding(Path(os.environ["BUILDER_CACHE_DIR"]), SECRET) == []  # memos included
