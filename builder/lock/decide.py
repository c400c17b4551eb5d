"""Deciding each heavy package per cell: the newest matching wheel on its pinned index, else a
source build at a ref that satisfies the stack's version."""

from __future__ import annotations

from builder.catalogue.documents import Catalogue, Document, Target
from builder.catalogue.models import Recipe, Stack
from builder.errors import BuilderError, Diagnostic, Unsatisfiable
from builder.lock.model import Decision
from builder.rules.compat import DEFAULT_INDEX, choose, excluded_on, usable_steps
from builder.rules.platform import TargetPlatform
from builder.rules.wheels import choose_ref, choose_wheel, combined
from builder.upstream.upstreams import Upstreams


def decide(catalogue: Catalogue, stack_doc: Document[Stack], target: Target, upstreams: Upstreams) -> list[Decision]:
    """For each heavy package: the newest matching wheel on its pinned index, else a source build."""
    stack = stack_doc.model
    recipes = {name: doc.model for name, doc in catalogue.recipes.items()}
    urls = upstreams.index_urls(catalogue, target)
    platform = TargetPlatform.of(target.cell, target.device)
    decisions, problems = [], []
    for position, package in enumerate(stack.packages):
        if excluded_on(stack, package.recipe, target.id):
            continue
        choice = choose(package, recipes, target)
        if choice.recipe is None:
            raise BuilderError(f"'{package.recipe}' cannot serve {target.id}: {'; '.join(choice.problems)}")
        decision, reasons = _decide_recipe(
            recipes[choice.recipe], package.recipe, choice.version, urls, platform, upstreams
        )
        if decision is None:
            where = stack_doc.at("packages", position, "recipe", message="")
            text = f"{package.recipe} {choice.version or '(any version)'} cannot be obtained for {target.id}: {'; '.join(reasons)}"
            problems.append(Diagnostic(where.path, where.line, where.column, text))
        else:
            decisions.append(decision)
    if problems:
        raise Unsatisfiable(problems)
    return decisions


def _decide_recipe(
    recipe: Recipe, package: str, wanted: str, urls: dict[str, str], platform: TargetPlatform, upstreams: Upstreams
) -> tuple[Decision | None, list[str]]:
    reasons: list[str] = []
    for step in usable_steps(recipe, urls):
        if step.wheel is not None and step.wheel.index == DEFAULT_INDEX:
            why = "from the machine's pip configuration, resolved with the rest of the environment"
            decision = Decision(
                package=package, recipe=recipe.name, wanted=wanted, kind="default", version=None,
                source=DEFAULT_INDEX, why=why,
            )  # fmt: skip
            return decision, reasons
        if step.wheel is not None:
            url = urls[step.wheel.index]
            spec_set = combined(wanted, step.wheel.version)
            files = upstreams.index.files(url, recipe.name)
            picked = choose_wheel(
                files, recipe.name, spec_set, platform, needs_cuda_local=step.wheel.local_version == "cuda"
            )
            cuda = f" +{platform.cuda_local}" if step.wheel.local_version == "cuda" else ""
            if picked.chosen is not None:
                file = picked.chosen.file
                why = (
                    f"newest wheel on {step.wheel.index} matching '{spec_set or 'any'}' for {platform.describe()}{cuda}"
                )
                decision = Decision(
                    package=package, recipe=recipe.name, wanted=wanted, kind="wheel",
                    version=str(picked.chosen.version), source=url, why=why, filename=file.filename, url=file.url,
                    sha256=file.sha256 or upstreams.http.sha256_of(file.url),
                )  # fmt: skip
                return decision, reasons
            offers = f"offers {', '.join(picked.offered)}" if picked.offered else "offers nothing for this platform"
            if picked.wrong_cuda:
                offers += f"; built for another CUDA: {', '.join(picked.wrong_cuda)}"
            reasons.append(
                f"no wheel on {step.wheel.index} ({url}) matches '{spec_set or 'any'}' for {platform.describe()}{cuda} ({offers})"
            )
        if step.source is not None:
            source = step.source
            picked_ref = choose_ref(source.refs, combined(wanted))
            if picked_ref is None:
                reasons.append(f"no source ref satisfies '{wanted}' (refs: {', '.join(source.refs)})")
                continue
            version, ref = picked_ref
            why = "source build: " + ("; ".join(reasons) if reasons else "the recipe prefers building it")
            decision = Decision(
                package=package, recipe=recipe.name, wanted=wanted, kind="source", version=version,
                source=source.repository, why=why, ref=ref, commit=upstreams.git.commit(source.repository, ref),
            )  # fmt: skip
            return decision, reasons
    return None, reasons
