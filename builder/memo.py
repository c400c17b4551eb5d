"""Content-addressed memos: a value kept under the hash of everything it was computed from.

A memo's key covers builder's own code (by content), the words that shaped the value (command
arguments, paths as given, the working directory where output depends on it) and every file it
was read from, by name and bytes. Change any of them and the key changes: a memo is never stale,
only missing. Entries live in builder's cache directory, written atomically; one that cannot be
read is a miss, one that cannot be written is skipped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import builder
from builder.fsutil import default_cache_dir, write_atomic_bytes

MEMO_FORMAT = "1"


@cache
def code_digest() -> str:
    """The hash of builder's version and the source of every module and template it runs."""
    package = Path(builder.__file__).parent
    digest = hashlib.sha256(f"{builder.__version__}\0{MEMO_FORMAT}".encode())
    for path in sorted(p for p in package.rglob("*") if p.suffix in (".py", ".j2") and p.is_file()):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def key(code: str, words: Iterable[str], files: Iterable[Path]) -> str:
    digest = hashlib.sha256(code.encode())
    for word in words:
        digest.update(b"w\0" + word.encode() + b"\0")
    for path in files:
        try:
            data = path.read_bytes()
        except OSError:
            digest.update(b"f\0" + str(path).encode() + b"\0missing\0")
            continue
        digest.update(b"f\0" + str(path).encode() + f"\0{len(data)}\0".encode() + data)
    return digest.hexdigest()


def _path(kind: str, memo_key: str) -> Path:
    return default_cache_dir() / "memo" / kind / memo_key


def get(kind: str, memo_key: str) -> bytes | None:
    try:
        return _path(kind, memo_key).read_bytes()
    except OSError:
        return None


def put(kind: str, memo_key: str, data: bytes) -> None:
    path = _path(kind, memo_key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic_bytes(path, data)
    except OSError:
        return
