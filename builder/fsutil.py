"""Files: writing so that a reader never sees half of one, and where builder keeps its caches."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename it over `path`."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as stream:
            stream.write(text)
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_atomic_bytes(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Like write_atomic; `mode` is set on the temporary file (created 0600) before any byte is written."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if mode is not None:
            os.fchmod(handle, mode)
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def default_cache_dir() -> Path:
    """$BUILDER_CACHE_DIR, else the XDG cache directory's builder/."""
    if "BUILDER_CACHE_DIR" in os.environ:
        return Path(os.environ["BUILDER_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "builder"


OUTPUT_MARKER = ".builder-output"  # in every directory builder writes as a whole; it may replace those


def check_output_dir(out: Path, *, protect: Path) -> None:
    """Whether `out` is a directory builder may write and replace: absent, empty, or one it wrote
    before (it holds the marker). Anything else is refused (a usage error) and nothing is touched:
    a directory with files builder did not write, the directory `protect` (the catalogue) or one
    holding it, `/`, the home directory, an existing file."""
    from builder.errors import UsageError

    where = out.resolve()
    if where == Path(where.anchor):
        raise UsageError(f"--out {out}: refusing to write into the filesystem root")
    if where == Path.home().resolve():
        raise UsageError(f"--out {out}: refusing to write into your home directory")
    protected = protect.resolve()
    if where == protected or protected.is_relative_to(where):
        raise UsageError(f"--out {out}: refusing to write over the catalogue at {protect}")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: is a file, not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / OUTPUT_MARKER).is_file():
        raise UsageError(
            f"--out {out}: the directory holds files builder did not write (no {OUTPUT_MARKER}); "
            "choose an empty or new directory"
        )


def claim_output_dir(out: Path, *, protect: Path) -> None:
    """`check_output_dir`, then make `out` and mark it as builder's."""
    check_output_dir(out, protect=protect)
    out.mkdir(parents=True, exist_ok=True)
    marker = out / OUTPUT_MARKER
    if not marker.is_file():
        write_atomic(
            marker, "Written by builder, which replaces this directory's contents when it writes here again.\n"
        )
