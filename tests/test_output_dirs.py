"""`render --out` and `stack --out` never destroy data: only a directory builder wrote before (its
marker), or an empty or absent one, is written; anything else is refused with exit 2, untouched."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from builder.fsutil import OUTPUT_MARKER
from tests.conftest import run_cli
from tests.test_render import GOLDEN_CASES, attach_locks, copy_catalogue

STACK, TARGET = GOLDEN_CASES[0]


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    catalogue = copy_catalogue(tmp_path / "home" / "catalogue")
    attach_locks(catalogue)
    monkeypatch.chdir(catalogue)
    (tmp_path / "user-home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "user-home"))
    return catalogue


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def user_files(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "notes.txt").write_text("mine\n")
    return path


REFUSED: dict[str, tuple[Callable[[Path], Path], str]] = {
    "a directory with the user's files": (lambda r: user_files(r.parent / "mine"), "holds files builder did not write"),
    "the catalogue root": (lambda r: r, "refusing to write over the catalogue"),
    "a directory holding the catalogue": (lambda r: r.parent, "refusing to write over the catalogue"),
    "the filesystem root": (lambda r: Path("/"), "refusing to write into the filesystem root"),
    "an existing file": (lambda r: r.parent / "file.txt", "is a file, not a directory"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
@pytest.mark.parametrize("command", ["render", "stack"])
def test_out_that_holds_something_else_is_refused(root: Path, case: str, command: str) -> None:
    (root.parent / "file.txt").write_text("keep me\n")
    make, message = REFUSED[case]
    out = make(root)
    before = snapshot(root.parent)
    result = run_cli(command, STACK, "--target", TARGET, "--out", str(out))
    assert result.code == 2, result.err
    assert len(result.errors) == 1 and message in result.errors[0], result.err
    assert snapshot(root.parent) == before  # nothing written, moved or deleted
    assert not [p for p in root.parent.iterdir() if p.name.startswith(".")]  # no staging or .old leftovers


def test_home_directory_itself_is_refused(root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = user_files(tmp_path / "elsewhere-home")
    monkeypatch.setenv("HOME", str(home))
    result = run_cli("render", STACK, "--target", TARGET, "--out", str(home))
    assert result.code == 2 and "refusing to write into your home directory" in result.err
    assert snapshot(home) == {"notes.txt": b"mine\n"}


@pytest.mark.parametrize("state", ["absent", "empty", "rendered before"])
def test_out_builder_may_write(root: Path, tmp_path: Path, state: str) -> None:
    out = tmp_path / "out"
    if state == "empty":
        out.mkdir()
    if state == "rendered before":
        assert run_cli("render", STACK, "--target", TARGET, "--out", str(out)).code == 0
        (out / "stale.txt").write_text("from an older render\n")
    result = run_cli("render", STACK, "--target", TARGET, "--out", str(out))
    assert result.code == 0, result.err
    assert (out / OUTPUT_MARKER).is_file() and (out / "Dockerfile").is_file()
    assert not (out / "stale.txt").exists()  # builder's own directory is replaced whole
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]
