"""What a catalogue's content is, for memos of output computed from it: every file of the catalogue
proper, and the kinds of the files it points at elsewhere (the app layer's), which validation checks."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only types: reading a memo must not load the models
    from builder.catalogue.documents import Catalogue


def catalogue_files(root: Path) -> list[Path]:
    """Every file under matrix/, recipes/ and stacks/, as validation finds them."""
    found = [p for p in (root / "matrix").rglob("*") if p.is_file()]
    for directory in ("recipes", "stacks"):
        found += [p for p in (root / directory).glob("*") if p.is_file()]
    return sorted(found)


def _kind(path: Path) -> str:
    return "dir" if path.is_dir() else "file" if path.is_file() else "missing"


def watched(catalogue: Catalogue) -> dict[str, str]:
    """The files outside the catalogue's directories that its stacks point at, with their kind."""
    paths = {
        (catalogue.root / item.src).resolve()
        for document in catalogue.stacks.values()
        if document.model.app
        for item in document.model.app.files
    }
    return {str(path): _kind(path) for path in sorted(paths)}


def unchanged(watched: dict[str, str]) -> bool:
    """Whether the files a catalogue pointed at are still what they were."""
    return all(_kind(Path(path)) == kind for path, kind in watched.items())
