"""The offline sandbox: `tests/sandbox/up` brings up the stand-ins, and the stand-in catalogue locks,
plans and renders against them for an arm64 and an amd64 cell. (Building them: test_stack_e2e.py.)"""

from __future__ import annotations

import json
import shlex
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli
from tests.standins import free_port

pytestmark = pytest.mark.integration


def _exports(text: str) -> dict[str, str]:
    found = {}
    for line in text.splitlines():
        assert line.startswith("export "), line
        key, _, value = line.removeprefix("export ").partition("=")
        found[key] = shlex.split(value)[0]
    return found


@pytest.fixture(scope="module")
def sandbox() -> Iterator[dict[str, str]]:
    first = subprocess.run([str(ROOT / "tests/sandbox/up")], capture_output=True, text=True, check=False, timeout=3000)
    assert first.returncode == 0, first.stderr[-3000:]
    again = subprocess.run([str(ROOT / "tests/sandbox/up")], capture_output=True, text=True, check=False, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout == first.stdout  # idempotent: the same sandbox, the same exports
    assert "mmdebstrap" not in again.stderr  # the bases come from the cache the second time
    try:
        yield _exports(first.stdout)
    finally:
        subprocess.run([str(ROOT / "tests/sandbox/down")], capture_output=True, check=False, timeout=60)


def test_exports_name_everything(sandbox: dict[str, str]) -> None:
    assert set(sandbox) == {
        "BUILDER_SANDBOX_REGISTRY", "BUILDER_SANDBOX_INDEX", "BUILDER_SANDBOX_ROOT",
        "BUILDER_SANDBOX_STACK", "BUILDER_SANDBOX_TARGETS", "BUILDER_SANDBOX_ARGS",
    }  # fmt: skip
    assert sandbox["BUILDER_SANDBOX_TARGETS"].split() == [
        "standin-arm64/debian12-cu126",
        "standin-amd64/debian12-cu126",
    ]
    assert run_cli("validate", "--root", sandbox["BUILDER_SANDBOX_ROOT"]).code == 0


def test_bases_are_multi_arch_in_the_registry(sandbox: dict[str, str]) -> None:
    import urllib.request

    for kind in ("runtime", "devel"):
        request = urllib.request.Request(
            f"http://{sandbox['BUILDER_SANDBOX_REGISTRY']}/v2/standin/{kind}/manifests/bookworm",
            headers={"Accept": "application/vnd.oci.image.index.v1+json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            index = json.load(response)
        assert sorted(m["platform"]["architecture"] for m in index["manifests"]) == ["amd64", "arm64"]


@pytest.mark.parametrize("target", ["standin-arm64/debian12-cu126", "standin-amd64/debian12-cu126"])
def test_stand_in_catalogue_locks_and_renders(sandbox: dict[str, str], tmp_path: Path, target: str) -> None:
    args = ["--root", sandbox["BUILDER_SANDBOX_ROOT"], *shlex.split(sandbox["BUILDER_SANDBOX_ARGS"])]
    args += [
        "--lock-dir",
        str(tmp_path / "locks"),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--index",
        f"default={sandbox['BUILDER_SANDBOX_INDEX']}",
    ]
    locked = run_cli("lock", "sandbox", "--target", target, *args)
    assert locked.code == 0, locked.err
    lock = json.loads((tmp_path / "locks" / "sandbox" / target / "image-lock.json").read_text())
    kinds = {p["package"]: p["kind"] for p in lock["packages"]}
    assert kinds == {"standin-lib": "wheel", "standin-ext": "source"}
    rendered = run_cli("render", "sandbox", "--target", target, "--out", str(tmp_path / "out"), *args)
    assert rendered.code == 0, rendered.err
    dockerfile = (tmp_path / "out" / "Dockerfile").read_text()
    registry = sandbox["BUILDER_SANDBOX_REGISTRY"]
    assert f"FROM {registry}/standin/devel@{lock['base-images']['devel']['digest']} AS base-devel" in dockerfile
    assert 'ARG SOURCE_URL="http://127.0.0.1:' in dockerfile and "/standin-ext.git" in dockerfile
    assert "MAX_JOBS=4" in dockerfile  # at 1 GB per compile job, at most 4 jobs (5 GB of build memory)


def test_down_stops_the_servers(sandbox: dict[str, str]) -> None:
    subprocess.run([str(ROOT / "tests/sandbox/down")], capture_output=True, check=True, timeout=60)
    host, port = sandbox["BUILDER_SANDBOX_REGISTRY"].split(":")
    with socket.socket() as probe:
        assert probe.connect_ex((host, int(port))) != 0
    again = subprocess.run([str(ROOT / "tests/sandbox/up")], capture_output=True, text=True, check=False, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]  # and it comes back, from the cached bases


def test_a_missing_tool_is_one_line_and_leaves_nothing_half_made(tmp_path: Path) -> None:
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "docker-registry").symlink_to(shutil.which("docker-registry") or "/usr/bin/docker-registry")
    env = {
        "PATH": str(tools),  # a registry, but no mmdebstrap
        "BUILDER_SANDBOX_DIR": str(tmp_path / "state"),
        "BUILDER_SANDBOX_REGISTRY_PORT": str(free_port()),
        "HOME": str(tmp_path),
    }
    sandbox = [sys.executable, "-m", "tests.sandbox"]
    try:
        result = subprocess.run([*sandbox, "up"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    finally:
        subprocess.run([*sandbox, "down"], cwd=ROOT, env=env, capture_output=True, timeout=60)
    assert result.returncode == 3
    assert result.stdout == ""  # nothing for eval to half-apply
    assert result.stderr.splitlines()[-1].startswith("sandbox: error: mmdebstrap: not installed; install mmdebstrap")
    assert "Traceback" not in result.stderr
    assert not list((tmp_path / "state" / "bases").glob("*.tar"))
