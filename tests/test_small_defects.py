"""Small inputs that used to be ignored or crash: each is now a one-line error with its exit code."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.upstream.http import HttpClient, Response
from tests.conftest import run_cli
from tests.test_render import GOLDEN_CASES, attach_locks, copy_catalogue

STACK, TARGET = GOLDEN_CASES[0]


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    catalogue = copy_catalogue(tmp_path / "catalogue")
    attach_locks(catalogue)
    monkeypatch.chdir(catalogue)
    return catalogue


@pytest.mark.parametrize("command", ["plan", "render", "lock"])
def test_a_misspelled_index_name_is_refused(root: Path, tmp_path: Path, command: str) -> None:
    args = [command, STACK, "--target", TARGET, "--index", "jetson-ai-lba=http://127.0.0.1:9/simple/"]
    if command == "render":
        args += ["--out", str(tmp_path / "out")]
    result = run_cli(*args)
    assert result.code == 2
    assert result.errors == [
        "error: --index jetson-ai-lba=...: 'jetson-ai-lba' is not an index of the catalogue "
        "(hint: did you mean 'jetson-ai-lab'?)"
    ]


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0", "lots"])
def test_build_memory_must_be_a_positive_finite_number(root: Path, value: str) -> None:
    result = run_cli("plan", STACK, "--target", TARGET, "--build-memory", value)
    assert result.code == 2 and len(result.errors) == 1
    assert "--build-memory" in result.errors[0] and "GB" in result.errors[0]


def test_a_cache_entry_that_is_a_directory_is_recovered(tmp_path: Path) -> None:
    client = HttpClient(tmp_path / "cache")
    url = "https://index.example/simple/torch/"
    entry = client._entry(url, "*/*")  # damage builder's own cache the way a crash or a user might
    entry.with_suffix(".body").mkdir(parents=True)
    (entry.with_suffix(".body") / "junk").write_text("x")
    client.store(url, "*/*", Response(url, 200, {"content-type": "text/html"}, b"<html></html>"))
    cached = client._read_cache(url, "*/*")
    assert cached is not None and cached.body == b"<html></html>"
