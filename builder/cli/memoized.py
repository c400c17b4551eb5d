"""Output of commands that are pure functions of the catalogue (and a lock), kept as memos.

`validate`, `show`, `matrix` and `plan` from a lock print what the catalogue files, the lock files
and the options determine. Their output is kept under the hash of all of those and of builder's
own code, with the kinds of the files the catalogue points at elsewhere; asking again with nothing
changed prints it without loading the catalogue. Errors are never kept: a catalogue with problems
is read and reported every time.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from builder import memo
from builder.catalogue.content import catalogue_files, unchanged, watched

if TYPE_CHECKING:
    from builder.catalogue.documents import Catalogue

Compute = Callable[[], tuple[str, "Catalogue | None"]]


def output(kind: str, root: Path, words: Sequence[str], files: Sequence[Path], compute: Compute) -> str:
    """What `compute` prints for these inputs: kept from before, or computed now (and kept when it
    returns the catalogue it read, i.e. when the output depends on nothing else)."""
    key = memo.key(memo.code_digest(), [str(root), str(root.resolve()), *words], [*catalogue_files(root), *files])
    kept = memo.get(kind, key)
    if kept is not None:
        try:
            entry = json.loads(kept)
            if unchanged(entry["watched"]):
                return str(entry["stdout"])
        except (ValueError, KeyError, TypeError):
            pass  # a torn entry is a miss
    text, catalogue = compute()
    if catalogue is not None:
        memo.put(kind, key, json.dumps({"watched": watched(catalogue), "stdout": text}).encode())
    return text
