"""The catalogue files a lock is made from, and their checksums: how drift is detected, not guessed."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from builder.catalogue.documents import Catalogue
from builder.catalogue.models import Stack


def input_files(catalogue: Catalogue, stack: Stack, target_id: str) -> list[Path]:
    """Every catalogue file the lock for stack x target depends on."""
    cell = catalogue.cells[target_id]
    names = set()
    for package in stack.packages:
        for name in [package.recipe, *(alt.recipe for alt in package.fallback)]:
            names.add(name)
            names.update(catalogue.recipes[name].model.depends)
    paths = [catalogue.stacks[stack.name].path, cell.path, catalogue.devices[cell.model.device].path]
    if catalogue.index_document is not None:
        paths.append(catalogue.index_document.path)
    paths += [catalogue.recipes[name].path for name in sorted(names)]
    return paths


def touched_by(catalogue: Catalogue, stack: Stack, target_id: str, changed: Iterable[Path]) -> bool:
    """Whether any of the `changed` paths (absolute) is something stack x target is made from: an
    input of its lock, a file or directory of its app layer, or its lock (ROOT/locks/STACK/TARGET)."""
    files = {path.resolve() for path in input_files(catalogue, stack, target_id)}
    trees = [(catalogue.root / item.src).resolve() for item in (stack.app.files if stack.app else [])]
    trees.append((catalogue.root / "locks" / stack.name / target_id).resolve())
    return any(path in files or any(path == tree or tree in path.parents for tree in trees) for path in changed)


def checksums(root: Path, paths: list[Path]) -> dict[str, str]:
    return {
        path.relative_to(root).as_posix(): "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(paths)
    }


def input_checksums(catalogue: Catalogue, stack: Stack, target_id: str) -> dict[str, str]:
    return checksums(catalogue.root, input_files(catalogue, stack, target_id))


def overall(files: dict[str, str]) -> str:
    """One checksum over every input: the lock's name in tags and labels."""
    text = "".join(f"{name} {digest}\n" for name, digest in sorted(files.items()))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
