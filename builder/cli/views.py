"""What the commands print: pure functions from values to rows and text."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from builder.catalogue.documents import Catalogue, Target
from builder.catalogue.models import Cell, Device, Recipe, SmokeCheck, Stack
from builder.rules.compat import DEFAULT_INDEX, choose, excluded_on, usable_steps

if TYPE_CHECKING:  # only types: `matrix` and `show` should not load the lock and plan modules
    from builder.lock.model import Decision
    from builder.plan.stages import Plan

MatrixRow = dict[str, Any]


def matrix_rows(
    catalogue: Catalogue, stack_names: Sequence[str] = (), changed: Collection[Path] | None = None
) -> list[MatrixRow]:
    """One row per stack x target, in the shape GitHub Actions' `strategy.matrix.include` takes; only
    the named stacks' when names are given, and only cells that `changed` paths touch when given."""
    from builder.lock.inputs import touched_by

    names = sorted({catalogue.stack(name).model.name for name in stack_names} or catalogue.stacks)
    rows = []
    for name in names:
        stack = catalogue.stacks[name].model
        for target in stack.targets:
            if changed is not None and not touched_by(catalogue, stack, target, changed):
                continue
            cell = catalogue.cells[target].model
            device = catalogue.device_of(target)
            rows.append(
                {
                    "target": target,
                    "stack": name,
                    "device": device.id,
                    "arch": device.arch,
                    "jetpack": cell.jetpack,
                    "cuda": cell.cuda,
                    "runs-on": list(cell.runners),
                }
            )
    return rows


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    return "\n".join(lines) + "\n"


def matrix_text(catalogue: Catalogue, stack_names: Sequence[str] = (), changed: Collection[Path] | None = None) -> str:
    rows = matrix_rows(catalogue, stack_names, changed)
    table = [
        [row["stack"], row["target"], row["arch"], row["jetpack"] or "-", row["cuda"], ", ".join(row["runs-on"])]
        for row in rows
    ]
    if not stack_names and changed is None:
        used = {row["target"] for row in rows}
        for target in sorted(set(catalogue.cells) - used):
            cell = catalogue.cells[target].model
            device = catalogue.device_of(target)
            table.append(["-", target, device.arch, cell.jetpack or "-", cell.cuda, ", ".join(cell.runners)])
    return _table(["STACK", "TARGET", "ARCH", "JETPACK", "CUDA", "RUNS-ON"], table)


# ---------------------------------------------------------------- build show


def _bandwidth_line(device: Device) -> str:
    default = next(mode for mode in device.power_modes if mode.name == device.default_power_mode)
    others = [f"{mode.name} {mode.memory_bandwidth_gbps:g}" for mode in device.power_modes if mode is not default]
    text = f"{default.memory_bandwidth_gbps:g} GB/s in {default.name} (default)"
    return text + (f"; other modes: {', '.join(others)} GB/s" if others else "")


def _platform_line(cell: Cell) -> str:
    parts = []
    if cell.jetpack:
        parts.append(f"JetPack {cell.jetpack} (L4T {cell.l4t})")
    release = f"Ubuntu {cell.ubuntu}" if cell.ubuntu else f"Debian {cell.debian}"
    parts += [release, f"CUDA {cell.cuda}", f"cuDNN {cell.cudnn}"]
    if cell.tensorrt:
        parts.append(f"TensorRT {cell.tensorrt}")
    parts.append(f"Python {cell.python}")
    return ", ".join(parts)


def _obtain_text(recipe: Recipe, cell: Cell, wanted: str) -> str:
    ways = []
    for step in usable_steps(recipe, cell.indexes):
        if step.wheel is not None:
            where = step.wheel.index
            if where in cell.indexes:
                where = f"{where} ({cell.indexes[where]})"
            elif where == DEFAULT_INDEX:
                where = "the default pip index"
            suffix = f" +cu{cell.cuda.replace('.', '')}" if step.wheel.local_version == "cuda" else ""
            ways.append(f"wheel{suffix} from {where}")
        elif step.source is not None:
            source = step.source
            versions = ", ".join(f"{version}={source.ref_of(version).ref}" for version in source.refs)
            ways.append(
                f"source build of {source.repository} [{versions}] "
                f"(~{source.expected_minutes} min, {source.peak_memory_gb:g} GB peak)"
            )
    return f"{wanted or 'any version'}: " + "; else ".join(ways)


def _smoke_line(check: SmokeCheck) -> str:
    bound = f"<= {check.max:g}" if check.max is not None else f">= {check.min:g}"
    text = f"{check.name}: {check.metric} {bound}"
    return text + (f" ({check.model})" if check.model else "")


def _target_lines(catalogue: Catalogue, stack: Stack, target_id: str) -> list[str]:
    cell = catalogue.cells[target_id].model
    device = catalogue.device_of(target_id)
    target = Target(target_id, cell, device)
    recipes = {key: doc.model for key, doc in catalogue.recipes.items()}
    out = [
        f"Target {target_id}",
        f"  device     {device.name} ({device.arch}, {device.platform}, compute capability {device.gpu.compute_capability})",
        f"  memory     {device.memory.size_gb:g} GB {device.memory.type}; {_bandwidth_line(device)}",
        f"  platform   {_platform_line(cell)}",
        f"  images     runtime {cell.base_images.runtime.ref}, devel {cell.base_images.devel.ref}",
        f"  builds     CUDA arch {';'.join(cell.cuda_arch_list)}, {cell.build_memory_gb:g} GB for builds, "
        f"runs on [{', '.join(cell.runners)}]",
        "  packages",
    ]
    width = max(len(package.recipe) for package in stack.packages)
    for package in stack.packages:
        name = package.recipe.ljust(width)
        if excluded_on(stack, package.recipe, target_id):
            out.append(f"    {name}  excluded here")
            continue
        choice = choose(package, recipes, target)
        if choice.recipe is None:
            out.append(f"    {name}  cannot be served: {'; '.join(choice.problems)}")
            continue
        text = _obtain_text(recipes[choice.recipe], cell, choice.version)
        if choice.is_fallback:
            text = f"fallback {choice.recipe} {text} (because {'; '.join(choice.problems)})"
        out.append(f"    {name}  {text}")
    return [*out, ""]


def _section_lines(stack: Stack) -> list[str]:
    out: list[str] = []
    if stack.exclude:
        out.append("Excluded")
        for item in stack.exclude:
            where = f" (on {', '.join(item.targets)})" if item.targets else ""
            out.append(f"  {item.name}{where}: {item.reason.strip()}")
        out.append("")
    if stack.requirements:
        out += ["Plain requirements", "  " + ", ".join(stack.requirements), ""]
    platform = stack.platform.model_dump(exclude_none=True)
    if platform:
        out += ["Platform requirements", "  " + ", ".join(f"{key} {value}" for key, value in platform.items()), ""]
    if stack.runtime.env or stack.runtime.power_mode:
        out.append("Runtime")
        if stack.runtime.power_mode:
            out.append(f"  power mode {stack.runtime.power_mode}")
        out += [f"  {key}={value}" for key, value in stack.runtime.env.items()]
        out.append("")
    if stack.app is not None:
        out.append("App layer")
        out += [f"  {item.src} -> {item.dest}" for item in stack.app.files]
        if stack.app.entrypoint:
            out.append(f"  entrypoint {' '.join(stack.app.entrypoint)}")
        if stack.app.ports:
            out.append(f"  ports {', '.join(str(port) for port in stack.app.ports)}")
        out.append("")
    if stack.smoke:
        out += ["Smoke checks (thresholds a build must meet)", *(f"  {_smoke_line(c)}" for c in stack.smoke), ""]
    outputs = [f"image {stack.outputs.image.name}"] if stack.outputs.image else []
    outputs += ["compose.yaml"] if stack.outputs.compose else []
    outputs += ["pixi.toml"] if stack.outputs.pixi else []
    return [*out, "Outputs", "  " + (", ".join(outputs) or "none")]


def stack_text(catalogue: Catalogue, name: str) -> str:
    """A summary a reader who never saw the YAML can follow."""
    stack = catalogue.stack(name).model
    out = [f"{stack.name}: {stack.description.strip()}", ""]
    for target_id in stack.targets:
        out += _target_lines(catalogue, stack, target_id)
    return "\n".join(out + _section_lines(stack)) + "\n"


def stack_json(catalogue: Catalogue, name: str) -> dict[str, Any]:
    """`build show --json`: the stack as validated, plus which recipe serves each package per target."""
    stack = catalogue.stack(name).model
    recipes = {key: doc.model for key, doc in catalogue.recipes.items()}
    targets = {}
    for target_id in stack.targets:
        target = Target(target_id, catalogue.cells[target_id].model, catalogue.device_of(target_id))
        choices: dict[str, dict[str, Any]] = {}
        for package in stack.packages:
            if excluded_on(stack, package.recipe, target_id):
                choices[package.recipe] = {"excluded": True}
                continue
            choice = choose(package, recipes, target)
            choices[package.recipe] = {
                "recipe": choice.recipe,
                "version": choice.version,
                "problems": list(choice.problems),
            }
        targets[target_id] = choices
    return {"stack": stack.model_dump(mode="json"), "targets": targets}


# ---------------------------------------------------------------- build plan


def _chosen(decision: Decision) -> str:
    if decision.kind == "source":
        return f"build {decision.version} ({decision.ref} = {str(decision.commit)[:12]})"
    if decision.kind == "default":
        return decision.version or "(resolved with the environment)"
    return f"{decision.version} ({decision.filename})"


def decisions_text(decisions: list[Decision], origin: str) -> str:
    """`build plan`'s decision table."""
    header = ["PACKAGE", "WANTED", "CHOSEN", "FROM", "WHY"]
    rows = [
        [
            d.package if d.package == d.recipe else f"{d.package} -> {d.recipe}",
            d.wanted or "any",
            _chosen(d),
            d.source,
            d.why,
        ]
        for d in decisions
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    lines = [f"decisions from {origin}"]
    for row in [header, *rows]:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)) + "  " + row[4])
    return "\n".join(lines) + "\n"


def stages_text(plan: Plan) -> str:
    """`build plan`'s stage section."""
    lines = [
        f"stages for {plan.stack} on {plan.target} (lock {plan.lock_checksum[:19]})",
        f"  base-devel    {plan.devel_image}",
        f"  base-runtime  {plan.runtime_image}",
    ]
    for wave_index, wave in enumerate(plan.waves):
        for name in wave:
            stage = next(b for b in plan.builders if b.name == name)
            lines.append(
                f"  {name}  wave {wave_index + 1}: {stage.repository} {stage.ref} ({stage.commit[:12]}), "
                f"MAX_JOBS={stage.max_jobs} NVCC_THREADS={stage.nvcc_threads}, ~{stage.minutes} min, "
                f"~{stage.peak_memory_gb:g} GB peak, key {stage.key[:19]}"
            )
    lines.append(
        f"  runtime       {len(plan.runtime)} locked wheels + {len(plan.builders)} built, key {plan.runtime_key[:19]}"
    )
    lines.append(f"  app           key {plan.app_key[:19]}")
    lines.append(
        f"estimate: {plan.estimated_minutes} min of source builds in {len(plan.waves)} wave(s), "
        f"peak {plan.estimated_peak_gb:g} GB of {plan.build_memory_gb:g} GB build memory"
    )
    if plan.builders:
        lines.append(
            "  the image build starts with the last wave (BuildKit engines)"
            if plan.runtime_alongside
            else "  the image build waits for the last wave: it leaves no room for the runtime stage"
        )
    return "\n".join(lines) + "\n"
