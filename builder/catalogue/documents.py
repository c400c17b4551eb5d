"""The loaded catalogue as values: each file's model with the marks of its data, and lookups."""

from __future__ import annotations

import difflib
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from builder.catalogue.marks import MarkedDict, mark_of
from builder.catalogue.models import Cell, Device, IndexCatalogue, IndexDef, Model, Recipe, Stack
from builder.errors import Diagnostic, UsageError

M = TypeVar("M", bound=Model)


@dataclass(frozen=True)
class Document(Generic[M]):
    """A validated file: its model, and the parsed data that knows where everything stands."""

    path: Path
    data: MarkedDict
    model: M

    def at(self, *loc: str | int, message: str, key: bool = False) -> Diagnostic:
        mark = mark_of(self.data, loc, key=key)
        return Diagnostic(self.path, mark.line, mark.column, message)


@dataclass(frozen=True)
class Target:
    """A cell together with its id and device: everything a compatibility rule looks at."""

    id: str
    cell: Cell
    device: Device


@dataclass(frozen=True)
class Catalogue:
    root: Path
    indexes: dict[str, IndexDef]
    devices: dict[str, Document[Device]]
    cells: dict[str, Document[Cell]]
    recipes: dict[str, Document[Recipe]]
    stacks: dict[str, Document[Stack]]
    index_document: Document[IndexCatalogue] | None = None
    broken: frozenset[str] = frozenset()  # names whose files failed to load: no "unknown X" noise for them

    def stack(self, name: str) -> Document[Stack]:
        if name not in self.stacks:
            raise UsageError(
                f"unknown stack '{name}'", hint=did_you_mean_text(name, self.stacks) or _known(self.stacks)
            )
        return self.stacks[name]

    def device_of(self, target: str) -> Device:
        return self.devices[self.cells[target].model.device].model

    def target(self, stack: Stack, target_id: str) -> Target:
        """One of the stack's targets as a cell with its device; any other id is a usage error."""
        if target_id not in stack.targets:
            hint = did_you_mean_text(target_id, stack.targets) or f"its targets: {', '.join(stack.targets)}"
            raise UsageError(f"'{target_id}' is not a target of stack '{stack.name}'", hint=hint)
        return Target(target_id, self.cells[target_id].model, self.device_of(target_id))


def _known(names: typing.Iterable[str]) -> str:
    return "known: " + ", ".join(sorted(names)) if names else "the catalogue has none"


def did_you_mean(word: str, candidates: typing.Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean_text(word: str, candidates: typing.Iterable[str]) -> str | None:
    match = did_you_mean(word, candidates)
    return f"did you mean '{match}'?" if match else None


def with_suggestion(message: str, word: str, candidates: typing.Iterable[str]) -> str:
    suggestion = did_you_mean_text(word, candidates)
    return f"{message} ({suggestion})" if suggestion else message


def target_id(cell_path: Path, matrix_dir: Path) -> str:
    return cell_path.relative_to(matrix_dir).with_suffix("").as_posix()
