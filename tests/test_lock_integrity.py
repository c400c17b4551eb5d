"""Locks that are tampered with or corrupt: every command that reads one refuses it (exit 1), names
the file and both values, writes nothing, and never re-resolves behind the user's back."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from builder.lock.model import read_lock, sha256_text, write_lock
from builder.lock.paths import lock_paths
from tests.conftest import run_cli
from tests.test_render import GOLDEN_CASES, attach_locks, copy_catalogue

STACK, TARGET = GOLDEN_CASES[0]
DIGIT = re.compile(r"[0-9a-f]")


@pytest.fixture
def locks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = copy_catalogue(tmp_path / "catalogue")
    attach_locks(root)
    monkeypatch.chdir(root)
    return root / "locks" / STACK / TARGET


def _json_edit(change: Callable[[dict[str, object]], object]) -> Callable[[Path], object]:
    def edit(directory: Path) -> None:
        path = directory / "image-lock.json"
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")

    return edit


def _decision(data: dict[str, object], recipe: str) -> dict[str, str]:
    packages = data["packages"]
    assert isinstance(packages, list)
    found: dict[str, str] = next(p for p in packages if p["recipe"] == recipe)
    return found


def _flip(text: str) -> str:
    """The same text with its last hex digit changed."""
    position = max(m.start() for m in DIGIT.finditer(text))
    return text[:position] + ("0" if text[position] != "0" else "1") + text[position + 1 :]


def _pylock_edit(change: Callable[[str], str], *, reseal: bool = False) -> Callable[[Path], object]:
    """Edit pylock.toml; with `reseal`, update the image lock's record of it too, as a careful forger would."""

    def edit(directory: Path) -> None:
        if not reseal:
            path = directory / "pylock.toml"
            path.write_text(change(path.read_text()))
            return
        lock = read_lock(lock_paths(directory.parents[2], STACK, TARGET))
        pylock = change(lock.pylock)
        image = lock.image.model_copy(update={"pylock_sha256": sha256_text(pylock)})
        write_lock(lock.paths, image, pylock, lock.build_pylocks)

    return edit


def _without_torch(text: str) -> str:
    head, *blocks = text.split("\n[[packages]]\n")
    return "\n[[packages]]\n".join([head, *(b for b in blocks if not b.startswith('name = "torch"\n'))])


def _torch_hash(text: str) -> str:
    block = text.index('name = "torch"\n')
    start = text.index("sha256 = ", block) + len('sha256 = "')
    return text[:start] + "0" * 64 + text[start + 64 :]


TAMPERS: dict[str, tuple[Callable[[Path], object], str]] = {
    "a wheel's sha256": (
        _json_edit(lambda d: _decision(d, "torch").update(sha256=_flip(_decision(d, "torch")["sha256"]))),
        "image-lock.json was edited after locking: it records checksum sha256:",
    ),
    "a base image digest": (
        _json_edit(lambda d: d["base-images"]["runtime"].update(digest="sha256:" + "0" * 64)),  # type: ignore[index]
        "image-lock.json was edited after locking",
    ),
    "a source commit": (
        _json_edit(lambda d: _decision(d, "ctranslate2").update(commit="0" * 40)),
        "image-lock.json was edited after locking",
    ),
    "an index URL pointing elsewhere": (
        _json_edit(lambda d: d.update(indexes={"jetson-ai-lab": "https://evil.example/simple/"})),
        "image-lock.json was edited after locking",
    ),
    "the recorded checksum": (
        _json_edit(lambda d: d.update(checksum=_flip(str(d["checksum"])))),
        "image-lock.json was edited after locking",
    ),
    "a package deleted from pylock.toml": (
        _pylock_edit(_without_torch),
        "pylock.toml was edited after locking: the image lock records sha256 ",
    ),
    "a hash changed in pylock.toml": (
        _pylock_edit(_torch_hash),
        "pylock.toml was edited after locking",
    ),
    "a package deleted, the records redone": (
        _pylock_edit(_without_torch, reseal=True),
        "pylock.toml has no torch; locks/maie-jetson/orin-nano-super/jp6.2-cu126/image-lock.json records wheel 2.8.0",
    ),
    "a hash changed, the records redone": (
        _pylock_edit(_torch_hash, reseal=True),
        "for torch; locks/maie-jetson/orin-nano-super/jp6.2-cu126/image-lock.json records https://standin.example/packages/torch-2.8.0",
    ),
    "the build requirements edited": (
        lambda d: (d / "pylock.build-ctranslate2.toml").write_text(
            (d / "pylock.build-ctranslate2.toml").read_text() + "\n"
        ),
        "pylock.build-ctranslate2.toml was edited after locking",
    ),
    "the build requirements deleted": (
        lambda d: (d / "pylock.build-ctranslate2.toml").unlink(),
        "pylock.build-ctranslate2.toml is missing from the lock",
    ),
    "an empty pylock.toml": (
        lambda d: (d / "pylock.toml").write_text(""),
        "pylock.toml was edited after locking",
    ),
    "a corrupt image-lock.json": (
        lambda d: (d / "image-lock.json").write_bytes(b"\x00\xffnot json"),
        "image-lock.json is corrupt: not UTF-8 text",
    ),
    "an image-lock.json cut short": (
        lambda d: (d / "image-lock.json").write_text((d / "image-lock.json").read_text()[:200]),
        "image-lock.json is corrupt: not JSON",
    ),
    "a field missing": (
        _json_edit(lambda d: d.pop("platform")),
        "image-lock.json is corrupt: platform: Field required",
    ),
    "a lock from an older builder": (
        _json_edit(lambda d: d.update({"lock-version": "1"})),
        "image-lock.json has lock-version '1'; this builder reads version 2",
    ),
}


@pytest.mark.parametrize("case", sorted(TAMPERS))
@pytest.mark.parametrize("command", ["plan", "render", "stack"])
def test_tampered_or_corrupt_lock_is_refused(locks: Path, tmp_path: Path, case: str, command: str) -> None:
    tamper, message = TAMPERS[case]
    tamper(locks)
    before = {p.name: p.read_bytes() for p in locks.iterdir()}
    args = [command, STACK, "--target", TARGET]
    out = tmp_path / "out"
    if command in ("render", "stack"):
        args += ["--out", str(out)]
    result = run_cli(*args)
    assert result.code == 1, result.err
    assert len(result.errors) == 1 and message in result.errors[0], result.err
    assert "Traceback" not in result.err and result.out == ""
    assert not out.exists()  # nothing written
    assert {p.name: p.read_bytes() for p in locks.iterdir()} == before  # the lock is left as it was


def test_an_intact_lock_reads(locks: Path) -> None:
    lock = read_lock(lock_paths(locks.parents[2], STACK, TARGET))
    assert lock.image.checksum == lock.image.own_checksum() and "ctranslate2" in lock.build_pylocks
    assert run_cli("plan", STACK, "--target", TARGET).code == 0
