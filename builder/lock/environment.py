"""The whole Python environment of a cell, resolved by uv around the decided heavy packages."""

from __future__ import annotations

import json
import re

from packaging.utils import canonicalize_name

from builder.catalogue.documents import Catalogue, Document
from builder.catalogue.models import Recipe, Stack
from builder.errors import BuilderError, Conflict, ToolFailed
from builder.lock.model import Decision, read_toml
from builder.rules.compat import DEFAULT_INDEX
from builder.rules.platform import TargetPlatform
from builder.rules.wheels import combined
from builder.upstream.upstreams import Upstreams
from builder.upstream.uv import compile_pylock

NEVER = "python_version < '0'"  # an override marker that removes a package from uv's resolution


def resolve_environment(
    catalogue: Catalogue,
    stack_doc: Document[Stack],
    decisions: list[Decision],
    platform: TargetPlatform,
    upstreams: Upstreams,
) -> tuple[list[Decision], str]:
    """The pylock.toml text for the stack on the platform, and the decisions with the versions uv
    chose for packages taken from the default index."""
    stack = stack_doc.model
    recipes = {name: doc.model for name, doc in catalogue.recipes.items()}
    requirements, overrides = _requirements(stack, decisions, recipes)
    try:
        pylock = compile_pylock(
            requirements, overrides, uv_platform=platform.uv_platform, python=platform.python,
            cache_dir=upstreams.options.cache_dir, index_args=upstreams.default_indexes().uv_args(),
            offline=upstreams.options.offline,
        ) + _source_entries(decisions)  # fmt: skip
    except Conflict as conflict:
        raise explain(conflict, stack_doc, decisions) from None
    _check_pinned_names(pylock, decisions, catalogue, stack)
    _validate_pylock(pylock)
    resolved = {canonicalize_name(p["name"]): p.get("version") for p in read_toml(pylock).get("packages", [])}
    decisions = [
        d.model_copy(update={"version": resolved.get(canonicalize_name(d.recipe))}) if d.kind == "default" else d
        for d in decisions
    ]
    return decisions, pylock


def _requirements(stack: Stack, decisions: list[Decision], recipes: dict[str, Recipe]) -> tuple[list[str], list[str]]:
    requirements, overrides = [], []
    for decision in decisions:
        if decision.kind == "wheel":
            requirements.append(f"{decision.recipe} @ {decision.url}#sha256={decision.sha256}")
        elif decision.kind == "default":
            spec = ",".join(str(s) for s in combined(decision.wanted, _default_spec(recipes[decision.recipe])))
            requirements.append(f"{decision.recipe}{spec}")
        else:
            overrides.append(f"{decision.recipe}; {NEVER}")  # built from source, never taken from an index
    requirements += stack.requirements
    overrides += [f"{item.name}; {NEVER}" for item in stack.exclude]
    return requirements, overrides


def _default_spec(recipe: Recipe) -> str:
    return next((step.wheel.version for step in recipe.obtain if step.wheel and step.wheel.index == DEFAULT_INDEX), "")


def explain(conflict: Conflict, stack_doc: Document[Stack], decisions: list[Decision]) -> Conflict:
    """The resolver's explanation, with who asked for each package it names (file:line:column)."""
    stack = stack_doc.model
    asked = []
    for position, package in enumerate(stack.packages):
        chosen = next((d for d in decisions if d.package == package.recipe), None)
        if chosen is not None and re.search(rf"\b{re.escape(chosen.recipe)}\b", conflict.message):
            where = stack_doc.at("packages", position, "recipe", message="").location()
            got = f", chosen {chosen.version}" if chosen.version else ""
            asked.append(f"{where} asks for {package.recipe} {package.version or '(any version)'}{got}")
    for position, text in enumerate(stack.requirements):
        name = re.split(r"[\s<>=!~;\[(@]", text, maxsplit=1)[0]
        if re.search(rf"\b{re.escape(name)}\b", conflict.message):
            where = stack_doc.at("requirements", position, message="").location()
            asked.append(f"{where} asks for {text}")
    return Conflict(conflict.message + ("; " + "; ".join(asked) if asked else ""))


def _source_entries(decisions: list[Decision]) -> str:
    blocks = []
    for decision in sorted((d for d in decisions if d.kind == "source"), key=lambda d: d.recipe):
        quote = json.dumps  # a JSON string is a valid TOML basic string
        vcs = f"type = {quote('git')}, url = {quote(decision.source)}, requested-revision = {quote(decision.ref)}"
        blocks.append(
            f"\n[[packages]]\nname = {quote(decision.recipe)}\nversion = {quote(decision.version)}\n"
            f"vcs = {{ {vcs}, commit-id = {quote(decision.commit)} }}\n"
        )
    return "".join(blocks)


def _check_pinned_names(pylock: str, decisions: list[Decision], catalogue: Catalogue, stack: Stack) -> None:
    """A package a recipe pins to its own index must never arrive from another index transitively."""
    ours = {canonicalize_name(d.recipe) for d in decisions}
    for package in read_toml(pylock).get("packages", []):
        name = canonicalize_name(package["name"])
        recipe = catalogue.recipes.get(name)
        if name in ours or recipe is None:
            continue
        pinned = [
            s.wheel.index for s in recipe.model.obtain if s.wheel and s.wheel.pinned and s.wheel.index != DEFAULT_INDEX
        ]
        if pinned:
            raise BuilderError(
                f"the environment pulls in {name} {package.get('version')} from the default index, "
                f"but recipes/{name}.yaml pins it to {pinned[0]}",
                hint=f"add '{name}' to the packages of stacks/{stack.name}.yaml, or exclude it",
            )


def _validate_pylock(text: str) -> None:
    from packaging.pylock import Pylock, PylockValidationError

    try:
        Pylock.from_dict(read_toml(text))
    except PylockValidationError as exc:
        raise ToolFailed(f"uv wrote a pylock.toml that does not validate: {exc}") from None
