"""What each heavy package of a stack may be on one cell: the candidates builder allows.

For each package (or the fallback that can serve the cell) the recipe's ways to obtain it are read
in order: the wheels on its index that fit the cell (Python tag, platform and glibc, `+cuXYZ` where
the recipe says so, the versions asked for), the machine's default index, or a source build at a
ref whose version is asked for. Which candidate each package gets is decided jointly, by the
resolver (`builder.lock.environment`), never one package at a time.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace

from builder.catalogue.documents import Catalogue, Document, Target
from builder.catalogue.models import Recipe, SourceBuild, Stack
from builder.errors import BuilderError, Diagnostic, Unsatisfiable
from builder.rules.compat import DEFAULT_INDEX, choose, excluded_on, usable_steps
from builder.rules.platform import TargetPlatform
from builder.rules.wheels import WheelCandidate, choose_wheel, combined, source_versions
from builder.upstream.upstreams import Upstreams


@dataclass(frozen=True)
class SourceOption:
    version: str
    ref: str
    requires: tuple[str, ...]


@dataclass(frozen=True)
class Candidates:
    """Everything one heavy package may be on the cell, and why other things may not."""

    package: str  # as the stack names it
    recipe: str  # the recipe that serves it here (the package's, or a fallback's)
    wanted: str  # the stack's version specifier
    where: Diagnostic  # the stack line that asks for it
    index: str | None = None  # the wheel step's index name
    index_url: str | None = None
    wheels: tuple[WheelCandidate, ...] = ()  # newest first
    offered: tuple[str, ...] = ()  # every version the index offers for the platform
    default_spec: str | None = None  # set when the machine's default index serves it
    repository: str | None = None
    sources: tuple[SourceOption, ...] = ()  # newest first
    reasons: tuple[str, ...] = ()  # why no wheel fits

    @property
    def spec(self) -> str:
        return str(combined(self.wanted, self.default_spec))

    def digest(self) -> str:
        """What was offered, as one hash: when it changes, the package is resolved again."""
        offered = {
            "recipe": self.recipe,
            "spec": self.spec,
            "default": self.default_spec is not None,
            "wheels": [[w.file.filename, w.file.url, w.file.sha256] for w in self.wheels],
            "sources": [[s.version, s.ref, list(s.requires)] for s in self.sources],
        }
        return "sha256:" + hashlib.sha256(json.dumps(offered, sort_keys=True).encode()).hexdigest()


def gather(catalogue: Catalogue, stack_doc: Document[Stack], target: Target, upstreams: Upstreams) -> list[Candidates]:
    """The candidates of every heavy package of the stack on `target`; a package with none at all is
    an Unsatisfiable naming the stack line that asks for it and what each way offered."""
    stack = stack_doc.model
    recipes = {name: doc.model for name, doc in catalogue.recipes.items()}
    urls = upstreams.index_urls(catalogue, target)
    platform = TargetPlatform.of(target.cell, target.device)
    found, problems = [], []
    for position, package in enumerate(stack.packages):
        if excluded_on(stack, package.recipe, target.id):
            continue
        choice = choose(package, recipes, target)
        if choice.recipe is None:
            raise BuilderError(f"'{package.recipe}' cannot serve {target.id}: {'; '.join(choice.problems)}")
        where = stack_doc.at("packages", position, "recipe", message="")
        candidates = _of_recipe(
            recipes[choice.recipe], package.recipe, choice.version, where, urls, platform, upstreams
        )
        if not (candidates.wheels or candidates.sources or candidates.default_spec is not None):
            text = (
                f"{package.recipe} {choice.version or '(any version)'} cannot be obtained for {target.id}: "
                f"{'; '.join(candidates.reasons)}"
            )
            problems.append(Diagnostic(where.path, where.line, where.column, text))
        found.append(candidates)
    if problems:
        raise Unsatisfiable(problems)
    return found


def _of_recipe(
    recipe: Recipe,
    package: str,
    wanted: str,
    where: Diagnostic,
    urls: dict[str, str],
    platform: TargetPlatform,
    upstreams: Upstreams,
) -> Candidates:
    base = Candidates(package=package, recipe=recipe.name, wanted=wanted, where=where)
    reasons: list[str] = []
    wheels: Candidates | None = None
    for step in usable_steps(recipe, urls):
        if step.wheel is not None and step.wheel.index == DEFAULT_INDEX:
            if wheels is not None:
                return wheels
            return replace(base, default_spec=step.wheel.version, reasons=tuple(reasons))
        if step.wheel is not None and wheels is None:
            url = urls[step.wheel.index]
            spec = combined(wanted, step.wheel.version)
            page = upstreams.index.page(url, recipe.name)
            offer = choose_wheel(
                page.files, recipe.name, spec, platform, needs_cuda_local=step.wheel.local_version == "cuda"
            )
            if offer.candidates:
                wheels = replace(
                    base, index=step.wheel.index, index_url=url, wheels=offer.candidates, offered=offer.offered
                )
                continue
            cuda = f" +{platform.cuda_local}" if step.wheel.local_version == "cuda" else ""
            if page.absent is not None:
                offers = page.absent
            else:
                offers = f"offers {', '.join(offer.offered)}" if offer.offered else "offers nothing for this platform"
                if offer.wrong_cuda:
                    offers += f"; built for another CUDA: {', '.join(offer.wrong_cuda)}"
            reasons.append(
                f"no wheel on {step.wheel.index} ({url}) matches '{spec or 'any'}' for {platform.describe()}{cuda} ({offers})"
            )
        if step.source is not None:
            sources = _sources(step.source, wanted)
            if not sources:
                reasons.append(f"no source ref satisfies '{wanted}' (refs: {', '.join(step.source.refs)})")
            chosen = wheels or base
            return replace(chosen, repository=step.source.repository, sources=sources, reasons=tuple(reasons))
    return wheels if wheels is not None else replace(base, reasons=tuple(reasons))


def _sources(source: SourceBuild, wanted: str) -> tuple[SourceOption, ...]:
    options = []
    for version in source_versions(source.refs, combined(wanted)):
        entry = source.ref_of(version)
        options.append(SourceOption(version, entry.ref, tuple(entry.requires)))
    return tuple(options)
