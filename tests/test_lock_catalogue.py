"""The issue's own command: lock the real maie-jetson stack against stand-ins for its upstreams.

The Jetson AI Lab index, NGC and GitHub are stand-ins on loopback; the pure-Python rest of the
environment resolves from this machine's own pip configuration, as `default` means.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli
from tests.standins import XFORMERS, JetsonUpstreams, jetson_upstreams, make_wheel

pytestmark = pytest.mark.integration
TARGET = "orin-nano-super/jp6.2-cu126"


@pytest.fixture(scope="module", params=["404", "fallback"])
def upstreams(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JetsonUpstreams]:
    """The stand-in Jetson index answers a name it lacks with 404, or (pypiserver's default
    configuration) with a redirect to the public index: both mean "not on this index"."""
    with jetson_upstreams(tmp_path_factory.mktemp("jetson"), fallback=request.param == "fallback") as started:
        yield started


@pytest.fixture
def catalogue(tmp_path: Path) -> Path:
    root = tmp_path / "catalogue"
    for name in ("matrix", "recipes", "stacks"):
        shutil.copytree(ROOT / name, root / name)
    return root


def test_lock_maie_jetson(catalogue: Path, upstreams: JetsonUpstreams, tmp_path: Path) -> None:
    args = ["lock", "maie-jetson", "--target", TARGET, *upstreams.lock_args(), "--root", str(catalogue)]
    args += ["--cache-dir", str(tmp_path / "cache")]
    first = run_cli(*args)
    assert first.code == 0, first.err
    directory = catalogue / "locks" / "maie-jetson" / TARGET
    pylock = (directory / "pylock.toml").read_bytes()
    image_lock = json.loads((directory / "image-lock.json").read_text())
    chosen = {p["package"]: (p["kind"], p.get("version")) for p in image_lock["packages"]}
    # Chosen jointly: torch 2.9.1 and torchaudio 2.9.1 are newer, but every vllm wants torch 2.8.0.
    assert chosen["torch"] == ("wheel", "2.8.0")
    assert chosen["torchaudio"] == ("wheel", "2.8.0")
    assert chosen["vllm"] == ("wheel", "0.11.0+cu126")
    assert chosen["ctranslate2"] == ("source", "4.7.1")  # not on the stand-in index: built from its tag
    assert chosen["faster-whisper"][0] == "default" and chosen["faster-whisper"][1]
    why = {p["package"]: p["why"] for p in image_lock["packages"]}
    assert "2.9.1 also offered" in why["torch"] and "2.9.1 also offered" in why["torchaudio"]
    text = pylock.decode()
    # xformers is only a dependency of vllm, and only the Jetson index has an aarch64 build of it.
    assert f'name = "xformers"\nversion = "{XFORMERS}"' in text
    assert f"{upstreams.index.url.rsplit('/simple/', 1)[0]}/packages/xformers-" in text
    for excluded in ("flashinfer-python", "onnxruntime"):
        assert f'name = "{excluded}"\n' not in text  # excluded by the stack, though vllm / faster-whisper ask
    assert 'name = "transformers"' in text and "hashes = { sha256 =" in text
    assert image_lock["base-images"]["runtime"]["platform"] == "linux/arm64"
    second = run_cli(*args)
    assert second.code == 0, second.err
    assert (directory / "pylock.toml").read_bytes() == pylock
    check = run_cli("lock", "maie-jetson", "--target", TARGET, "--check", *args[4:])
    assert check.code == 0, check.err


def test_a_reuploaded_transitive_wheel_is_refused(catalogue: Path, tmp_path: Path) -> None:
    """xformers comes only from the Jetson index, as a dependency of vllm: relocking notices when the
    index serves other bytes under its locked file name, as for the heavy packages themselves."""
    import hashlib

    with jetson_upstreams(tmp_path / "own") as upstreams:
        args = ["lock", "maie-jetson", "--target", TARGET, *upstreams.lock_args(), "--root", str(catalogue)]
        args += ["--cache-dir", str(tmp_path / "cache")]
        assert run_cli(*args).code == 0
        wheel = next(upstreams.index.directory.glob("xformers-*.whl"))
        old = hashlib.sha256(wheel.read_bytes()).hexdigest()
        wheel.unlink()
        rebuilt = make_wheel(
            wheel.parent, "xformers", XFORMERS, "cp310-cp310-linux_aarch64", ["torch==2.8.0"], "# new\n"
        )
        new = hashlib.sha256(rebuilt.read_bytes()).hexdigest()
        check = run_cli("lock", "maie-jetson", "--target", TARGET, "--check", *args[4:])
        again = run_cli(*args)
    assert check.code == 1 and f"the index now serves sha256 {new}, the lock recorded sha256 {old}" in check.err
    assert again.code == 1 and f"{wheel.name}: the index now serves sha256 {new}" in again.err
