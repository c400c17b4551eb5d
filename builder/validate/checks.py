"""Cross-file rules: fields related to each other and files to files, each reported at the line at fault."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from builder.catalogue import placeholders
from builder.catalogue.documents import Catalogue, Document, Target, with_suggestion
from builder.catalogue.models import Cell, Device, IndexCatalogue, Match, Recipe, SourceBuild, Stack
from builder.errors import Diagnostic
from builder.rules.compat import DEFAULT_INDEX, choose, excluded_on, specifier, specifier_problem
from builder.rules.cuda import CudaArch, arch_problem, capability


def check_catalogue(catalogue: Catalogue) -> list[Diagnostic]:
    problems: list[Diagnostic] = []
    if catalogue.index_document is not None:
        problems += _check_indexes(catalogue.index_document)
    for device in catalogue.devices.values():
        problems += _check_device(device)
    for cell in catalogue.cells.values():
        problems += _check_cell(catalogue, cell)
    for recipe in catalogue.recipes.values():
        problems += _check_recipe(catalogue, recipe)
    for stack in catalogue.stacks.values():
        problems += _check_stack(catalogue, stack)
    return problems


def _duplicates(items: Iterable[str]) -> Iterator[tuple[int, str]]:
    seen: set[str] = set()
    for position, item in enumerate(items):
        if item in seen:
            yield position, item
        seen.add(item)


# ---------------------------------------------------------------- indexes


def _check_indexes(document: Document[IndexCatalogue]) -> Iterator[Diagnostic]:
    for name, index in document.model.indexes.items():
        if name == DEFAULT_INDEX:
            yield document.at(
                "indexes", name, key=True, message="'default' is reserved for the machine's pip configuration"
            )
        if "{path}" not in index.url:
            yield document.at("indexes", name, "url", message="url must contain '{path}', which each cell fills in")
        if not index.url.startswith(("https://", "http://", "file://")):
            yield document.at("indexes", name, "url", message=f"'{index.url}' is not an http(s):// or file:// URL")


# ---------------------------------------------------------------- devices


def _check_device(document: Document[Device]) -> Iterator[Diagnostic]:
    device = document.model
    directory = document.path.parent.name
    if device.id != directory:
        yield document.at("id", message=f"device id '{device.id}' must match its directory 'matrix/{directory}/'")
    expected_arch = "x86_64" if device.platform == "x86" else "aarch64"
    if device.arch != expected_arch:
        yield document.at("arch", message=f"platform '{device.platform}' runs on {expected_arch}, not {device.arch}")
    if device.kind == "jetson":
        if device.platform == "x86":
            yield document.at("platform", message="a Jetson device is 'tegra' (Orin) or 'sbsa' (Thor), not 'x86'")
        if not device.memory.unified:
            yield document.at(
                "memory", "unified", message="Jetson memory is shared by CPU and GPU: unified must be true"
            )
        if device.cpu is None:
            yield document.at("kind", message="a Jetson device needs a 'cpu' block")
    names = [mode.name for mode in device.power_modes]
    for position, name in _duplicates(names):
        yield document.at("power_modes", position, "name", message=f"duplicate power mode '{name}'")
    ids = [mode.nvpmodel_id for mode in device.power_modes if mode.nvpmodel_id is not None]
    for position, mode in enumerate(device.power_modes):
        if device.kind == "jetson" and mode.nvpmodel_id is None:
            yield document.at("power_modes", position, message=f"power mode '{mode.name}' needs its nvpmodel_id")
        if device.kind == "discrete" and mode.nvpmodel_id is not None:
            yield document.at("power_modes", position, "nvpmodel_id", message="nvpmodel_id is for Jetson devices only")
        if mode.nvpmodel_id is not None and ids.count(mode.nvpmodel_id) > 1 and ids.index(mode.nvpmodel_id) != position:
            yield document.at(
                "power_modes", position, "nvpmodel_id", message=f"duplicate nvpmodel_id {mode.nvpmodel_id}"
            )
    if device.default_power_mode not in names:
        yield document.at(
            "default_power_mode",
            message=with_suggestion(
                f"default_power_mode '{device.default_power_mode}' is not one of the power modes",
                device.default_power_mode,
                names,
            ),
        )


# ---------------------------------------------------------------- cells


def _expected_cell_name(cell: Cell, device: Device) -> str:
    cuda = "cu" + cell.cuda.replace(".", "")
    release = f"jp{cell.jetpack}" if device.kind == "jetson" else cell.os_release
    return f"{release}-{cuda}"


def _check_cell(catalogue: Catalogue, document: Document[Cell]) -> Iterator[Diagnostic]:
    cell = document.model
    directory = document.path.parent.name
    if cell.device not in catalogue.devices:
        if cell.device not in catalogue.broken:
            yield document.at(
                "device", message=with_suggestion(f"unknown device '{cell.device}'", cell.device, catalogue.devices)
            )
        return
    if cell.device != directory:
        yield document.at("device", message=f"cell is in matrix/{directory}/ but names device '{cell.device}'")
    device = catalogue.devices[cell.device].model
    if (cell.ubuntu is None) == (cell.debian is None):
        yield document.at("device", message="a cell names the release of its base images: one of 'ubuntu' or 'debian'")
        return
    if device.kind == "jetson":
        if cell.jetpack is None:
            yield document.at("jetpack", message="missing required key 'jetpack' (cells of Jetson devices need it)")
        if cell.l4t is None:
            yield document.at("l4t", message="missing required key 'l4t' (cells of Jetson devices need it)")
    else:
        for key in ("jetpack", "l4t"):
            if getattr(cell, key) is not None:
                yield document.at(
                    key, key=True, message=f"'{key}' is for Jetson devices; {device.id} is a discrete GPU"
                )
    expected = _expected_cell_name(cell, device)
    if (device.kind != "jetson" or cell.jetpack is not None) and document.path.stem != expected:
        field = (
            "cuda"
            if not document.path.stem.endswith("-cu" + cell.cuda.replace(".", ""))
            else ("jetpack" if device.kind == "jetson" else ("ubuntu" if cell.ubuntu else "debian"))
        )
        yield document.at(
            field, message=f"file name '{document.path.name}' does not match its contents (expected '{expected}.yaml')"
        )
    for name in cell.indexes:
        if name not in catalogue.indexes:
            yield document.at(
                "indexes", name, key=True, message=with_suggestion(f"unknown index '{name}'", name, catalogue.indexes)
            )
    yield from _check_arch_list(document, device)
    if device.memory.unified and cell.build_memory_gb > device.memory.size_gb:
        yield document.at(
            "build_memory_gb",
            message=f"build_memory_gb {cell.build_memory_gb:g} exceeds the device's {device.memory.size_gb:g} GB of memory",
        )


def _check_arch_list(document: Document[Cell], device: Device) -> Iterator[Diagnostic]:
    cell = document.model
    archs = [CudaArch.parse(text) for text in cell.cuda_arch_list]
    for position, (text, arch) in enumerate(zip(cell.cuda_arch_list, archs, strict=True)):
        problem = arch_problem(arch, cell.cuda)
        if problem is not None:
            yield document.at("cuda_arch_list", position, message=f"cuda_arch_list entry '{text}': {problem}")
    for position, text in _duplicates(cell.cuda_arch_list):
        yield document.at("cuda_arch_list", position, message=f"duplicate cuda_arch_list entry '{text}'")
    device_cc = capability(device.gpu.compute_capability)
    if not any(arch.runs_on(device_cc) for arch in archs):
        yield document.at(
            "cuda_arch_list",
            message=f"cuda_arch_list [{', '.join(cell.cuda_arch_list)}] builds nothing that runs on {device.id} "
            f"(compute capability {device.gpu.compute_capability})",
        )


# ---------------------------------------------------------------- recipes


def _check_recipe(catalogue: Catalogue, document: Document[Recipe]) -> Iterator[Diagnostic]:
    recipe = document.model
    if recipe.name != document.path.stem:
        yield document.at(
            "name", message=f"recipe name '{recipe.name}' must match its file name '{document.path.stem}.yaml'"
        )
    if canonicalize_name(recipe.name) != recipe.name:
        yield document.at(
            "name", message=f"recipe name '{recipe.name}' is not normalised (use '{canonicalize_name(recipe.name)}')"
        )
    indexes = [DEFAULT_INDEX, *catalogue.indexes]
    for position, step in enumerate(recipe.obtain):
        if (step.wheel is None) == (step.source is None):
            yield document.at("obtain", position, message="each obtain step is exactly one of 'wheel' or 'source'")
        if step.wheel is not None:
            if step.wheel.index not in indexes:
                yield document.at(
                    "obtain",
                    position,
                    "wheel",
                    "index",
                    message=with_suggestion(f"unknown index '{step.wheel.index}'", step.wheel.index, indexes),
                )
            yield from _spec(document, ("obtain", position, "wheel", "version"), step.wheel.version)
        if step.source is not None:
            yield from _check_source(document, ("obtain", position, "source"), step.source)
    for position, name in enumerate(recipe.depends):
        if name == recipe.name:
            yield document.at("depends", position, message=f"recipe '{name}' cannot depend on itself")
        elif name not in catalogue.recipes:
            yield document.at(
                "depends", position, message=with_suggestion(f"unknown recipe '{name}'", name, catalogue.recipes)
            )
    for key in ("cuda", "python", "compute_capability"):
        yield from _spec(document, ("constraints", key), getattr(recipe.constraints, key))
    for position, item in enumerate(recipe.incompatible):
        yield from _check_match(catalogue, document, ("incompatible", position, "when"), item.when)


def _spec(
    document: Document[Recipe] | Document[Stack], loc: tuple[str | int, ...], text: str | None
) -> Iterator[Diagnostic]:
    problem = specifier_problem(text)
    if problem is not None:
        yield document.at(*loc, message=problem)


def _check_match(
    catalogue: Catalogue, document: Document[Recipe], loc: tuple[str | int, ...], match: Match
) -> Iterator[Diagnostic]:
    for position, target in enumerate(match.targets or []):
        if target not in catalogue.cells and target not in catalogue.broken:
            yield document.at(
                *loc,
                "targets",
                position,
                message=with_suggestion(f"unknown target '{target}'", target, catalogue.cells),
            )
    for position, device in enumerate(match.devices or []):
        if device not in catalogue.devices:
            yield document.at(
                *loc,
                "devices",
                position,
                message=with_suggestion(f"unknown device '{device}'", device, catalogue.devices),
            )
    for key in ("cuda", "python", "compute_capability"):
        yield from _spec(document, (*loc, key), getattr(match, key))


def _check_source(document: Document[Recipe], loc: tuple[str | int, ...], source: SourceBuild) -> Iterator[Diagnostic]:
    recipe = document.model
    for key, value in source.env.items():
        yield from _check_placeholders(document, (*loc, "env", key), value)
    for position, step in enumerate(source.steps):
        yield from _check_placeholders(document, (*loc, "steps", position), step)
    if not any("wheel_dir" in placeholders.placeholders(step) for step in source.steps):
        yield document.at(
            *loc, "steps", message="no step writes to '{{ wheel_dir }}', so the build would leave no wheel"
        )
    for position, text in enumerate(source.build_requires):
        problem = _requirement_problem(text)
        if problem is not None:
            yield document.at(*loc, "build_requires", position, message=problem)
    for version in source.refs:
        entry = source.ref_of(version)
        where = (*loc, "refs", version) if isinstance(source.refs[version], str) else (*loc, "refs", version, "ref")
        if entry.ref.startswith("-") or any(char.isspace() for char in entry.ref):
            yield document.at(*where, message=f"'{entry.ref}' is not a git tag or commit")
        elif re.fullmatch(r"[0-9a-f]{7,39}", entry.ref):
            yield document.at(*where, message=f"'{entry.ref}' looks like a short commit; write all 40 hex digits")
        for position, text in enumerate(entry.requires):
            problem = _requirement_problem(text)
            if problem is not None:
                yield document.at(*loc, "refs", version, "requires", position, message=problem)
    if recipe.name not in source.produces:
        yield document.at(
            *loc, "produces", message=f"a source build of '{recipe.name}' must produce the '{recipe.name}' wheel"
        )
    if source.parallelism.memory_per_job_gb > source.peak_memory_gb:
        yield document.at(
            *loc,
            "parallelism",
            "memory_per_job_gb",
            message=f"memory_per_job_gb {source.parallelism.memory_per_job_gb:g} exceeds peak_memory_gb {source.peak_memory_gb:g}",
        )


def _check_placeholders(document: Document[Recipe], loc: tuple[str | int, ...], text: str) -> Iterator[Diagnostic]:
    for name in placeholders.placeholders(text):
        if name not in placeholders.VARIABLES:
            yield document.at(
                *loc, message=with_suggestion(f"unknown placeholder '{{{{ {name} }}}}'", name, placeholders.VARIABLES)
            )


def _requirement_problem(text: str) -> str | None:
    try:
        Requirement(text)
    except InvalidRequirement as exc:
        return f"'{text}' is not a PEP 508 requirement: {str(exc).splitlines()[0]}"
    return None


# ---------------------------------------------------------------- stacks


def _check_stack(catalogue: Catalogue, document: Document[Stack]) -> Iterator[Diagnostic]:
    stack = document.model
    if stack.name != document.path.stem:
        yield document.at(
            "name", message=f"stack name '{stack.name}' must match its file name '{document.path.stem}.yaml'"
        )
    for position, target in enumerate(stack.targets):
        if target not in catalogue.cells and target not in catalogue.broken:
            yield document.at(
                "targets", position, message=with_suggestion(f"unknown target '{target}'", target, catalogue.cells)
            )
    for position, target in _duplicates(stack.targets):
        yield document.at("targets", position, message=f"duplicate target '{target}'")
    yield from _check_packages(catalogue, document)
    yield from _check_requirements(catalogue, document)
    for position, item in enumerate(stack.exclude):
        for index, target in enumerate(item.targets or []):
            if target not in stack.targets:
                yield document.at(
                    "exclude", position, "targets", index, message=f"'{target}' is not one of this stack's targets"
                )
    for key in ("cuda", "tensorrt", "cudnn", "python"):
        yield from _spec(document, ("platform", key), getattr(stack.platform, key))
    for position, check in enumerate(stack.smoke):
        if (check.min is None) == (check.max is None):
            yield document.at(
                "smoke", position, message=f"smoke check '{check.name}' needs exactly one of 'min' or 'max'"
            )
    for position, name in _duplicates(check.name for check in stack.smoke):
        yield document.at("smoke", position, "name", message=f"duplicate smoke check '{name}'")
    if stack.app is not None:
        for position, app_file in enumerate(stack.app.files):
            yield from _check_app_file(catalogue.root, document, position, app_file.src)
    yield from _check_targets(catalogue, document)


def _check_packages(catalogue: Catalogue, document: Document[Stack]) -> Iterator[Diagnostic]:
    stack = document.model
    listed = [package.recipe for package in stack.packages]
    for position, package in enumerate(stack.packages):
        names = [(package.recipe, ("packages", position, "recipe"))] + [
            (alt.recipe, ("packages", position, "fallback", index, "recipe"))
            for index, alt in enumerate(package.fallback)
        ]
        for name, loc in names:
            if name not in catalogue.recipes and name not in catalogue.broken:
                yield document.at(*loc, message=with_suggestion(f"unknown recipe '{name}'", name, catalogue.recipes))
        yield from _spec(document, ("packages", position, "version"), package.version)
        for index, alt in enumerate(package.fallback):
            yield from _spec(document, ("packages", position, "fallback", index, "version"), alt.version)
        for item in stack.exclude:
            if item.name == package.recipe and item.targets is None:
                yield document.at(
                    "packages", position, "recipe", message=f"'{package.recipe}' is both a package and excluded"
                )
        if package.recipe in catalogue.recipes:
            for needed in catalogue.recipes[package.recipe].model.depends:
                if needed not in listed and needed in catalogue.recipes:
                    yield document.at(
                        "packages",
                        position,
                        "recipe",
                        message=f"'{package.recipe}' depends on '{needed}' (recipes/{package.recipe}.yaml); add it to packages",
                    )
    for position, name in _duplicates(listed):
        yield document.at("packages", position, "recipe", message=f"duplicate package '{name}'")


def _check_requirements(catalogue: Catalogue, document: Document[Stack]) -> Iterator[Diagnostic]:
    stack = document.model
    names: list[str] = []
    for position, text in enumerate(stack.requirements):
        problem = _requirement_problem(text)
        if problem is not None:
            yield document.at("requirements", position, message=problem)
            continue
        name = canonicalize_name(Requirement(text).name)
        names.append(name)
        if name in catalogue.recipes:
            yield document.at(
                "requirements", position, message=f"'{name}' has a recipe (recipes/{name}.yaml); list it under packages"
            )
        if any(item.name == name for item in stack.exclude):
            yield document.at("requirements", position, message=f"'{name}' is both required and excluded")
        if names.count(name) > 1:
            yield document.at("requirements", position, message=f"duplicate requirement '{name}'")


def _check_app_file(root: Path, document: Document[Stack], position: int, src: str) -> Iterator[Diagnostic]:
    path = (root / src).resolve()
    if Path(src).is_absolute() or not path.is_relative_to(root.resolve()):
        yield document.at("app", "files", position, "src", message=f"'{src}' must be a path inside the catalogue root")
    elif not path.exists():
        yield document.at("app", "files", position, "src", message=f"'{src}' does not exist")


def _check_targets(catalogue: Catalogue, document: Document[Stack]) -> Iterator[Diagnostic]:
    """Each package, platform requirement and power mode against each of the stack's cells."""
    stack = document.model
    recipes = {name: doc.model for name, doc in catalogue.recipes.items()}
    known = all(p.recipe in recipes and all(a.recipe in recipes for a in p.fallback) for p in stack.packages)
    for position, target_id in enumerate(stack.targets):
        if target_id not in catalogue.cells or catalogue.cells[target_id].model.device not in catalogue.devices:
            continue
        target = Target(target_id, catalogue.cells[target_id].model, catalogue.device_of(target_id))
        for key in ("cuda", "tensorrt", "cudnn", "python"):
            wanted = getattr(stack.platform, key)
            have = getattr(target.cell, key)
            if wanted is None or specifier_problem(wanted) is not None:
                continue
            if have is None or Version(have) not in specifier(wanted):
                yield document.at(
                    "targets",
                    position,
                    message=f"stack needs {key} {wanted}, {target_id} has {have or 'none'} (platform.{key})",
                )
        power_mode = stack.runtime.power_mode
        names = [mode.name for mode in target.device.power_modes]
        if power_mode is not None and power_mode not in names:
            yield document.at(
                "runtime",
                "power_mode",
                message=with_suggestion(f"{target.device.id} has no power mode '{power_mode}'", power_mode, names),
            )
        if not known:
            continue
        for index, package in enumerate(stack.packages):
            if excluded_on(stack, package.recipe, target_id):
                continue
            choice = choose(package, recipes, target)
            if choice.recipe is None:
                yield document.at(
                    "packages",
                    index,
                    "recipe",
                    message=f"'{package.recipe}' cannot serve {target_id}: {'; '.join(choice.problems)}",
                )
