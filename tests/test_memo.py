"""Memos of catalogue-only output: kept only for a catalogue that validated, never stale, never an error."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from builder import memo
from tests.conftest import run_cli

APP = "app:\n  files:\n    - {src: app/run.py, dest: /app/run.py}\n"


def memo_entries(kind: str) -> list[Path]:
    directory = Path(os.environ["BUILDER_CACHE_DIR"]) / "memo" / kind
    return sorted(directory.iterdir()) if directory.is_dir() else []


def test_unchanged_catalogue_answers_from_the_memo_and_a_change_is_seen(catalogue_dir: Path) -> None:
    first = run_cli("show", "demo")
    assert first.code == 0 and len(memo_entries("show")) == 1
    assert run_cli("show", "demo") == first  # the same output, from the memo
    stack = catalogue_dir / "stacks" / "demo.yaml"
    stack.write_text(stack.read_text().replace("A demo stack.", "A changed stack."))
    changed = run_cli("show", "demo")
    assert changed.code == 0 and "A changed stack." in changed.out and "A demo stack." not in changed.out
    assert len(memo_entries("show")) == 2


def test_a_catalogue_with_problems_is_never_kept(catalogue_dir: Path) -> None:
    stack = catalogue_dir / "stacks" / "demo.yaml"
    stack.write_text(stack.read_text().replace("recipe: torch", "recipe: torhc"))
    for _ in range(2):
        result = run_cli("validate")
        assert result.code == 2 and "unknown recipe 'torhc'" in result.err
    assert memo_entries("validate") == []


def test_a_file_the_catalogue_points_at_is_looked_at_again(catalogue_dir: Path) -> None:
    (catalogue_dir / "app").mkdir()
    (catalogue_dir / "app" / "run.py").write_text("print('hi')\n")
    stack = catalogue_dir / "stacks" / "demo.yaml"
    stack.write_text(stack.read_text() + APP)
    assert run_cli("validate").code == 0
    (catalogue_dir / "app" / "run.py").unlink()  # outside matrix/, recipes/ and stacks/
    result = run_cli("validate")
    assert result.code == 2 and "'app/run.py' does not exist" in result.err


def test_a_torn_memo_is_a_miss(catalogue_dir: Path) -> None:
    first = run_cli("validate", "--json")
    (entry,) = memo_entries("validate")
    entry.write_bytes(b'{"stdout": "ok: lies\\n"')  # cut short
    assert run_cli("validate", "--json") == first


@pytest.mark.parametrize("words", [["a"], ["b"]])
def test_keys_cover_words_and_files(tmp_path: Path, words: list[str]) -> None:
    file = tmp_path / "f"
    file.write_text("one")
    before = memo.key(memo.code_digest(), words, [file])
    file.write_text("two")
    assert memo.key(memo.code_digest(), words, [file]) != before
    assert memo.key(memo.code_digest(), [*words, "x"], [file]) != memo.key(memo.code_digest(), words, [file])
    file.unlink()
    assert memo.key(memo.code_digest(), words, [file]) != before


def test_plan_from_a_lock_is_kept_and_a_changed_lock_is_seen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.test_render import GOLDEN_CASES, attach_locks, copy_catalogue

    root = copy_catalogue(tmp_path / "catalogue")
    attach_locks(root)
    monkeypatch.chdir(root)
    stack, target = GOLDEN_CASES[0]
    first = run_cli("plan", stack, "--target", target)
    assert first.code == 0 and "decisions from lock" in first.out
    assert run_cli("plan", stack, "--target", target) == first and len(memo_entries("plan")) == 1
    pylock = root / "locks" / stack / target / "pylock.toml"
    pylock.write_text(pylock.read_text().replace('lock-version = "1.0"', 'lock-version = "1.0" '))
    assert run_cli("plan", stack, "--target", target) != first  # not answered from the memo
