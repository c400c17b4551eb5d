"""Pure rules for whether a recipe, or a fallback, can serve a cell."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from builder.catalogue.documents import Target
from builder.catalogue.models import Constraints, Match, ObtainStep, PackageRef, Recipe, Stack

DEFAULT_INDEX = "default"  # the machine's own pip configuration


def specifier(text: str) -> SpecifierSet:
    """A PEP 440 specifier set; raises InvalidSpecifier (a ValueError) on bad text."""
    return SpecifierSet(text)


def specifier_problem(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        SpecifierSet(text)
    except InvalidSpecifier:
        return f"'{text}' is not a version specifier such as '>=2.8,<2.10'"
    return None


def _contains(spec: str, version: str) -> bool:
    """Whether `version` satisfies `spec`; a malformed spec is reported by the checks, so ignore it here."""
    try:
        return Version(version) in SpecifierSet(spec)
    except (InvalidSpecifier, InvalidVersion):
        return True


def constraint_problems(constraints: Constraints, target: Target) -> list[str]:
    """Why `target` falls outside `constraints` (empty when it does not)."""
    cell, device = target.cell, target.device
    problems = []
    if constraints.arch is not None and device.arch not in constraints.arch:
        problems.append(f"needs arch {' or '.join(constraints.arch)}, {target.id} is {device.arch}")
    if constraints.platform is not None and device.platform not in constraints.platform:
        problems.append(f"needs platform {' or '.join(constraints.platform)}, {target.id} is {device.platform}")
    if constraints.cuda is not None and not _contains(constraints.cuda, cell.cuda):
        problems.append(f"needs CUDA {constraints.cuda}, {target.id} has {cell.cuda}")
    if constraints.python is not None and not _contains(constraints.python, cell.python):
        problems.append(f"needs Python {constraints.python}, {target.id} has {cell.python}")
    if constraints.compute_capability is not None and not _contains(
        constraints.compute_capability, device.gpu.compute_capability
    ):
        problems.append(
            f"needs compute capability {constraints.compute_capability}, "
            f"{target.id} has {device.gpu.compute_capability}"
        )
    return problems


def matches(match: Match, target: Target) -> bool:
    cell, device = target.cell, target.device
    checks = [
        match.targets is None or target.id in match.targets,
        match.devices is None or device.id in match.devices,
        match.arch is None or device.arch in match.arch,
        match.platform is None or device.platform in match.platform,
        match.cuda is None or _contains(match.cuda, cell.cuda),
        match.python is None or _contains(match.python, cell.python),
        match.compute_capability is None or _contains(match.compute_capability, device.gpu.compute_capability),
    ]
    return all(checks)


def usable_steps(recipe: Recipe, indexes: Collection[str]) -> list[ObtainStep]:
    """The recipe's ways to obtain it that exist for a cell with these index paths."""
    return [
        step
        for step in recipe.obtain
        if step.source is not None
        or (step.wheel is not None and (step.wheel.index == DEFAULT_INDEX or step.wheel.index in indexes))
    ]


def recipe_problems(recipe: Recipe, target: Target) -> list[str]:
    """Why `recipe` cannot serve `target`: constraints, known incompatibilities, no way to obtain it."""
    problems = constraint_problems(recipe.constraints, target)
    problems += [item.reason for item in recipe.incompatible if matches(item.when, target)]
    if not usable_steps(recipe, target.cell.indexes):
        indexes = sorted({step.wheel.index for step in recipe.obtain if step.wheel is not None})
        problems.append(f"{target.id} has no path on index {', '.join(indexes)} and the recipe has no source build")
    return problems


def excluded_on(stack: Stack, name: str, target_id: str) -> bool:
    return any(item.name == name and (item.targets is None or target_id in item.targets) for item in stack.exclude)


@dataclass(frozen=True)
class Choice:
    """Which recipe serves a package reference on one target, or why none can."""

    package: PackageRef
    recipe: str | None
    version: str
    problems: tuple[str, ...] = ()

    @property
    def is_fallback(self) -> bool:
        return self.recipe is not None and self.recipe != self.package.recipe


def choose(package: PackageRef, recipes: dict[str, Recipe], target: Target) -> Choice:
    """The first of the package's recipe and its fallbacks that can serve the target."""
    candidates = [(package.recipe, package.version)] + [(alt.recipe, alt.version) for alt in package.fallback]
    problems: list[str] = []
    for name, version in candidates:
        found = recipe_problems(recipes[name], target)
        if not found:
            return Choice(package, name, version, tuple(problems))
        problems += [f"{name}: {problem}" if len(candidates) > 1 else problem for problem in found]
    return Choice(package, None, "", tuple(problems))
