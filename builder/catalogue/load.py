"""Finding, parsing and validating the catalogue's YAML files (matrix/, recipes/, stacks/)."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from builder.catalogue.documents import Catalogue, Document, M, target_id, with_suggestion
from builder.catalogue.marks import MarkedDict, mark_of
from builder.catalogue.models import Cell, Device, IndexCatalogue, Model, Recipe, Stack
from builder.catalogue.yamlio import load_yaml_file
from builder.errors import Diagnostic, UsageError, display_path

_PATTERN_MEANINGS = {
    r"^[a-z0-9][a-z0-9._-]*$": "a lowercase name (letters, digits, '.', '_', '-')",
    r"^[0-9]+(\.[0-9]+)*$": "a dotted version such as 12.6",
    r"^3\.[0-9]+$": "a Python version such as 3.10",
    r"^[0-9]+\.[0-9]+$": "a compute capability such as 8.7",
    r"^[0-9]+\.[0-9]+[af]?(\+PTX)?$": "a CUDA architecture such as 8.7, 9.0a or 8.7+PTX",
    r"^[a-z0-9][a-z0-9._-]*/[a-z0-9][a-z0-9._-]*$": "a target such as orin-nano-super/jp6.2-cu126",
    r"^[A-Za-z_][A-Za-z0-9_]*$": "an environment variable name",
    r"^sha256:[0-9a-f]{64}$": "a digest such as sha256:<64 hex digits>",
    r"^[a-z0-9][a-z0-9._/:-]*:[A-Za-z0-9._-]+$": "an image reference such as registry/repository:tag",
    r"^[0-9]{2}\.[0-9]{2}$": "an Ubuntu release such as 22.04",
    r"^(https://|file://|/)\S+$": "an https:// or file:// URL",
    r"^/": "an absolute path",
}


# ---------------------------------------------------------------- pydantic errors -> diagnostics


def _describe(value: object) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"'{str(value).lower()}'"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"'{value}'"


def _loc_text(loc: tuple[str | int, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _unwrap(annotation: Any) -> list[Any]:
    """The model, list and dict types an annotation can hold (through Optional, Annotated, unions)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [t for arg in typing.get_args(annotation) for t in _unwrap(arg)]
    return [annotation]


def _fields_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> set[str]:
    """Field names of the model(s) found by following `loc` from `model`."""
    current: list[Any] = [model]
    for part in loc:
        following: list[Any] = []
        for annotation in current:
            for kind in _unwrap(annotation):
                origin = typing.get_origin(kind)
                if isinstance(kind, type) and issubclass(kind, BaseModel) and isinstance(part, str):
                    if part in kind.model_fields:
                        following.append(kind.model_fields[part].annotation)
                elif origin is list and isinstance(part, int):
                    following.append(typing.get_args(kind)[0])
                elif origin is dict and isinstance(part, str):
                    following.append(typing.get_args(kind)[1])
        current = following or current
    names: set[str] = set()
    for annotation in current:
        for kind in _unwrap(annotation):
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                names |= set(kind.model_fields)
    return names


def _message(error: ErrorDetails, model: type[BaseModel]) -> tuple[str, bool]:
    """A one-line message for a pydantic error, and whether it points at the key (not the value)."""
    loc = tuple(error["loc"])
    kind = error["type"]
    where = _loc_text(loc)
    value = error.get("input")
    ctx = error.get("ctx") or {}
    if loc and loc[-1] == "[key]":  # a dict key failed its pattern: talk about the key itself
        loc = loc[:-1]
        where = _loc_text(loc[:-1])
        meaning = _PATTERN_MEANINGS.get(str(ctx.get("pattern")), "a valid key")
        return f"{where}: key {_describe(value)} is not {meaning}", True
    if kind == "extra_forbidden":
        key = str(loc[-1])
        parent = _loc_text(loc[:-1])
        text = f"unknown key '{key}'" + (f" in {parent}" if parent else "")
        return with_suggestion(text, key, _fields_at(model, loc[:-1])), True
    if kind == "missing":
        parent = _loc_text(loc[:-1])
        return f"missing required key '{loc[-1]}'" + (f" in {parent}" if parent else ""), False
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", "")
        choices = [c.strip() for c in expected.replace(" or ", ", ").split(",")]
        text = f"{where}: {_describe(value)} is not one of: {', '.join(choices)}"
        return with_suggestion(text, str(value), choices), False
    if kind == "string_pattern_mismatch":
        meaning = _PATTERN_MEANINGS.get(str(ctx.get("pattern")), f"text matching {ctx.get('pattern')}")
        return f"{where}: {_describe(value)} is not {meaning}", False
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"{where}: expected a mapping, found {_describe(value)}", False
    if kind == "list_type":
        return f"{where}: expected a list, found {_describe(value)}", False
    if kind == "string_type":
        return f"{where}: expected text, found {_describe(value)}", False
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"{where}: expected a whole number, found {_describe(value)}", False
    if kind in ("float_parsing", "float_type"):
        return f"{where}: expected a number, found {_describe(value)}", False
    if kind in ("bool_parsing", "bool_type"):
        return f"{where}: expected true or false, found {_describe(value)}", False
    if kind == "too_short":
        least = ctx.get("min_length", 1)
        noun = "character" if isinstance(value, str) else "item"
        return f"{where}: must have at least {least} {noun}{'s' if least != 1 else ''}", False
    if kind == "too_long" or kind == "string_too_long":
        return f"{where}: is too long (at most {ctx.get('max_length')})", False
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return f"{where}: {error['msg'].replace('Input should be', 'must be')}, found {_describe(value)}", False
    return f"{where}: {error['msg']}", False


def validate_document(path: Path, data: MarkedDict, model: type[M]) -> tuple[Document[M] | None, list[Diagnostic]]:
    try:
        instance = model.model_validate(data)
    except ValidationError as exc:
        diagnostics = []
        for error in exc.errors(include_url=False):
            text, at_key = _message(error, model)
            loc = tuple(part for part in error["loc"] if part != "[key]")
            mark = mark_of(data, loc, key=at_key)
            diagnostics.append(Diagnostic(path, mark.line, mark.column, text))
        return None, diagnostics
    return Document(path, data, instance), []


def _load(path: Path, model: type[M], problems: list[Diagnostic]) -> Document[M] | None:
    data, diagnostics = load_yaml_file(path)
    problems.extend(diagnostics)
    if data is None:
        return None
    document, diagnostics = validate_document(path, data, model)
    problems.extend(diagnostics)
    return document


# ---------------------------------------------------------------- finding files


@dataclass
class _Found:
    index: Path | None = None
    devices: list[Path] = field(default_factory=list)
    cells: list[Path] = field(default_factory=list)
    recipes: list[Path] = field(default_factory=list)
    stacks: list[Path] = field(default_factory=list)


def _find_files(root: Path, problems: list[Diagnostic]) -> _Found:
    found = _Found()
    matrix = root / "matrix"
    for path in sorted(matrix.rglob("*")):
        if path.is_dir() or path.name.startswith("."):
            continue
        depth = len(path.relative_to(matrix).parts)
        if path.suffix == ".yml":
            problems.append(Diagnostic(path, 1, 1, "catalogue files use the .yaml extension, not .yml"))
        elif path.suffix != ".yaml":
            continue
        elif depth == 1 and path.name == "indexes.yaml":
            found.index = path
        elif depth == 2 and path.name == "device.yaml":
            found.devices.append(path)
        elif depth == 2:
            found.cells.append(path)
        else:
            problems.append(
                Diagnostic(
                    path,
                    1,
                    1,
                    "unexpected file: matrix/ holds indexes.yaml, <device>/device.yaml and <device>/<cell>.yaml",
                )
            )
    for directory, bucket in (("recipes", found.recipes), ("stacks", found.stacks)):
        for path in sorted((root / directory).glob("*")):
            if path.suffix == ".yaml":
                bucket.append(path)
            elif path.suffix == ".yml":
                problems.append(Diagnostic(path, 1, 1, "catalogue files use the .yaml extension, not .yml"))
    return found


def check_root(root: Path) -> None:
    if not root.is_dir():
        raise UsageError(f"catalogue root {root} is not a directory")
    missing = [name for name in ("matrix", "recipes", "stacks") if not (root / name).is_dir()]
    if missing:
        raise UsageError(
            f"{root} is not a catalogue root: it has no {', '.join(name + '/' for name in missing)}",
            hint="run from the project directory or pass --root DIR",
        )


def read_catalogue(root: Path) -> tuple[Catalogue, list[Diagnostic]]:
    """Read and shape-check every file under `root`: the catalogue, and every problem found in it.
    Cross-file rules are `builder.validate`'s; `load_catalogue` there applies both."""
    check_root(root)
    problems: list[Diagnostic] = []
    found = _find_files(root, problems)
    index_document = _load(found.index, IndexCatalogue, problems) if found.index else None
    loaded_before = len(problems)
    catalogue = Catalogue(
        root=root,
        indexes=dict(index_document.model.indexes) if index_document else {},
        devices=_keyed(found.devices, Device, problems, lambda doc: doc.model.id, "device id"),
        cells={},
        recipes=_keyed(found.recipes, Recipe, problems, lambda doc: doc.model.name, "recipe"),
        stacks=_keyed(found.stacks, Stack, problems, lambda doc: doc.model.name, "stack"),
        index_document=index_document,
    )
    for path in found.cells:
        document = _load(path, Cell, problems)
        if document is not None:
            catalogue.cells[target_id(path, root / "matrix")] = document
    broken = {problem.path for problem in problems[loaded_before:]}
    return dataclasses.replace(catalogue, broken=frozenset(_names_of(root, broken))), problems


def _keyed(
    paths: list[Path],
    model: type[M],
    problems: list[Diagnostic],
    key: typing.Callable[[Document[M]], str],
    what: str,
) -> dict[str, Document[M]]:
    documents: dict[str, Document[M]] = {}
    for path in paths:
        document = _load(path, model, problems)
        if document is None:
            continue
        name = key(document)
        if name in documents:
            first = display_path(documents[name].path)
            problems.append(document.at(_id_field(model), message=f"duplicate {what} '{name}' (also in {first})"))
            continue
        documents[name] = document
    return documents


def _id_field(model: type[Model]) -> str:
    return "id" if "id" in model.model_fields else "name"


def _names_of(root: Path, paths: set[Path]) -> set[str]:
    """Every name a broken file might have defined: its device directory, target id or file stem."""
    names = set()
    for path in paths:
        names.add(path.stem)
        if path.parent.parent == root / "matrix":
            names.add(path.parent.name)
            names.add(target_id(path, root / "matrix"))
    return names
