"""The build plan: a DAG of stages from a lock and the catalogue, with memory-aware parallelism.

base images -> one builder stage per source build (devel base, makes wheels) -> runtime stage
(runtime base, installs the locked and the built wheels) -> app layer. Pure: no IO here.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from packaging.markers import Environment
from packaging.pylock import Package, PackageArchive, PackageSdist, PackageWheel, Pylock
from packaging.utils import canonicalize_name

from builder.catalogue import placeholders
from builder.catalogue.documents import Catalogue
from builder.catalogue.models import Cell, Device, Recipe, SourceBuild, Stack
from builder.errors import PlanError
from builder.lock.model import Lock, read_toml
from builder.rules.cuda import cmake_architectures, torch_arch_list
from builder.rules.mirrors import apply_mirrors, mirrored
from builder.rules.platform import TargetPlatform

CUDA_HOME = "/usr/local/cuda"
# What the runtime stage takes before it needs the built wheels (the base's apt-get, a venv, a user):
# room the last wave must leave for the image build to start alongside it.
RUNTIME_PREP_GB = 0.5
SRC_DIR = "/src"
WHEEL_DIR = "/wheels"


@dataclass(frozen=True)
class Requirement:
    """One locked file: `name @ url --hash=sha256:...`."""

    name: str
    version: str
    url: str
    sha256: str

    def line(self) -> str:
        return f"{self.name} @ {self.url} --hash=sha256:{self.sha256}"


@dataclass(frozen=True)
class BuilderStage:
    name: str  # build-<recipe>
    recipe: str
    version: str
    repository: str
    source_url: str  # where the builder stage clones from: the repository, or its mirror
    ref: str
    commit: str
    subdirectory: str | None
    env: dict[str, str]
    steps: list[str]
    build_requirements: list[Requirement]  # its build tools, locked (hashes) for the cell
    system_packages: list[str]
    needs_locked: list[Requirement]  # locked wheels its dependencies come from
    needs_built: list[str]  # builder stages whose wheels it installs first
    after: list[str]  # builder stages of the previous wave: a memory barrier, not a dependency
    max_jobs: int
    nvcc_threads: int
    peak_memory_gb: float
    minutes: int
    key: str


@dataclass(frozen=True)
class Plan:
    stack: str
    target: str
    platform: TargetPlatform
    cell: Cell
    device: Device
    lock_checksum: str
    devel_image: str  # ref@digest
    runtime_image: str
    builders: list[BuilderStage]
    waves: list[list[str]]
    runtime: list[Requirement]
    locked_key: str  # the locked wheels' install step
    runtime_key: str  # the built wheels' install step (and the runtime stage as a whole)
    app_key: str
    build_memory_gb: float
    estimated_peak_gb: float
    runtime_alongside: bool  # the image build may start with the last wave of source builds (memory allows)
    estimated_minutes: int
    imports: list[str]
    env: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["platform"] = {"python": self.platform.python, "arch": self.platform.arch, "cuda": self.platform.cuda}
        data["cell"] = self.target
        data["device"] = self.device.id
        return data


def _key(*parts: object) -> str:
    return "sha256:" + hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def environment(platform: TargetPlatform) -> Environment:
    """PEP 508 marker values for the cell's Python on Linux."""
    return {
        "implementation_name": "cpython",
        "implementation_version": f"{platform.python}.0",
        "os_name": "posix",
        "platform_machine": platform.arch,
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": "Linux",
        "platform_version": "",
        "python_full_version": f"{platform.python}.0",
        "python_version": platform.python,
        "sys_platform": "linux",
    }


def locked_requirements(pylock_text: str, platform: TargetPlatform, *, sdists: bool = False) -> list[Requirement]:
    """The wheel of every locked package for the platform; source-built (vcs) entries are skipped.
    With `sdists` (build requirements), a package with no wheel for the platform may be its sdist."""
    lock = Pylock.from_dict(read_toml(pylock_text))
    requirements = []
    for package, dist in lock.select(environment=environment(platform), tags=platform.tags):
        if isinstance(dist, PackageArchive | PackageWheel) or (sdists and isinstance(dist, PackageSdist)):
            requirements.append(_requirement(package, dist))
        elif not hasattr(dist, "commit_id"):
            raise PlanError(
                f"{package.name} {package.version} has no wheel for {platform.describe()} in the lock (binary only)"
            )
    return sorted(requirements, key=lambda r: r.name)


def _requirement(package: Package, dist: PackageArchive | PackageWheel | PackageSdist) -> Requirement:
    sha = (dist.hashes or {}).get("sha256")
    if not dist.url or not sha:
        raise PlanError(f"{package.name}: the lock gives no URL and sha256 for it")
    if not dist.url.startswith(("https://", "http://")):
        raise PlanError(
            f"{package.name}: the lock points at {dist.url}, which a build cannot fetch; lock from an http(s) index"
        )
    return Requirement(str(canonicalize_name(package.name)), str(package.version), dist.url, sha)


def _build_requirements(lock: Lock, recipe: str, platform: TargetPlatform) -> list[Requirement]:
    text = lock.build_pylocks.get(recipe)
    if text is None:
        raise PlanError(f"the lock builds {recipe} from source but has no locked build requirements for it; lock again")
    return locked_requirements(text, platform, sdists=True)


def _jobs(source: SourceBuild, budget: float, cores: int | None) -> int:
    jobs = math.floor(budget / source.parallelism.memory_per_job_gb)
    for cap in (source.parallelism.max_jobs, cores):
        if cap is not None:
            jobs = min(jobs, cap)
    return max(jobs, 1)


def _values(
    cell: Cell, platform: TargetPlatform, recipe: str, version: str, jobs: int, nvcc_threads: int
) -> dict[str, str]:
    return {
        "torch_cuda_arch_list": torch_arch_list(cell.cuda_arch_list),
        "cmake_cuda_architectures": cmake_architectures(cell.cuda_arch_list),
        "cuda_version": cell.cuda,
        "cuda_home": CUDA_HOME,
        "python_version": platform.python,
        "max_jobs": str(jobs),
        "nvcc_threads": str(nvcc_threads),
        "version": version,
        "src_dir": SRC_DIR,
        "wheel_dir": f"{WHEEL_DIR}/{recipe}",
    }


def _source_of(recipe: Recipe) -> SourceBuild:
    for step in recipe.obtain:
        if step.source is not None:
            return step.source
    raise PlanError(f"the lock builds {recipe.name} from source, but recipes/{recipe.name}.yaml has no source build")


def make_plan(
    catalogue: Catalogue,
    stack: Stack,
    target_id: str,
    lock: Lock,
    build_memory_gb: float | None = None,
    *,
    image_mirrors: Mapping[str, str] | None = None,
    git_mirrors: Mapping[str, str] | None = None,
) -> Plan:
    """The stage DAG for one locked stack x target; mirrors say where a build pulls bases and clones."""
    cell = catalogue.cells[target_id].model
    device = catalogue.device_of(target_id)
    platform = TargetPlatform.of(cell, device)
    budget = build_memory_gb if build_memory_gb is not None else cell.build_memory_gb
    cores = device.cpu.cores if device.kind == "jetson" and device.cpu else None
    images = lock.image.base_images
    mirrors = dict(image_mirrors or {})
    devel = mirrored(images.devel.pinned, mirrors)
    runtime_image = mirrored(images.runtime.pinned, mirrors)
    runtime = locked_requirements(lock.pylock, platform)
    by_name = {requirement.name: requirement for requirement in runtime}
    decisions = {d.recipe: d for d in lock.image.packages}
    sources = [d for d in lock.image.packages if d.kind == "source"]

    drafts = []
    for decision in sources:
        recipe = catalogue.recipes[decision.recipe].model
        source = _source_of(recipe)
        if source.parallelism.memory_per_job_gb > budget:
            raise PlanError(
                f"{recipe.name} cannot be built on {target_id}: one compile job needs "
                f"{source.parallelism.memory_per_job_gb:g} GB, the build memory is {budget:g} GB "
                f"(cell build_memory_gb {cell.build_memory_gb:g}; --build-memory overrides it)"
            )
        jobs = _jobs(source, budget, cores)
        values = _values(cell, platform, recipe.name, str(decision.version), jobs, source.parallelism.nvcc_threads)
        built = [d for d in recipe.depends if d in decisions and decisions[d].kind == "source"]
        locked = [by_name[str(canonicalize_name(d))] for d in recipe.depends if str(canonicalize_name(d)) in by_name]
        drafts.append((recipe, source, decision, jobs, values, built, locked))

    waves = _waves([(r.name, built, j * s.parallelism.memory_per_job_gb) for r, s, _, j, _, built, _ in drafts], budget)
    wave_of = {name: index for index, wave in enumerate(waves) for name in wave}
    builders = []
    keys: dict[str, str] = {}
    for recipe, source, decision, jobs, values, built, locked in sorted(
        drafts, key=lambda d: (wave_of[d[0].name], d[0].name)
    ):
        env = {key: placeholders.expand(value, values) for key, value in source.env.items()}
        steps = [placeholders.expand(step, values) for step in source.steps]
        wave = wave_of[recipe.name]
        after = [f"build-{name}" for name in waves[wave - 1]] if wave > 0 else []
        tools = _build_requirements(lock, recipe.name, platform)
        key = _key(devel, recipe.name, decision.version, decision.commit, cell.cuda_arch_list, platform.python,
                   env, steps, [r.line() for r in tools], source.system_packages, [r.line() for r in locked],
                   [keys[b] for b in built])  # fmt: skip
        keys[recipe.name] = key
        builders.append(
            BuilderStage(
                name=f"build-{recipe.name}",
                recipe=recipe.name,
                version=str(decision.version),
                repository=decision.source,
                source_url=apply_mirrors(decision.source, dict(git_mirrors or {})),
                ref=str(decision.ref),
                commit=str(decision.commit),
                subdirectory=source.subdirectory,
                env=env,
                steps=steps,
                build_requirements=tools,
                system_packages=list(source.system_packages),
                needs_locked=locked,
                needs_built=[f"build-{name}" for name in built],
                after=[name for name in after if name.removeprefix("build-") not in built],
                max_jobs=jobs,
                nvcc_threads=source.parallelism.nvcc_threads,
                peak_memory_gb=jobs * source.parallelism.memory_per_job_gb,
                minutes=source.expected_minutes,
                key=key,
            )
        )
    peaks = {b.name: b.peak_memory_gb for b in builders}
    minutes = {b.name: b.minutes for b in builders}
    runtime_key = _key(runtime_image, [r.line() for r in runtime], [b.key for b in builders], stack.runtime.env)
    app = stack.app.model_dump() if stack.app else None
    imports = sorted({module for d in decisions.values() for module in catalogue.recipes[d.recipe].model.imports})
    return Plan(
        stack=stack.name,
        target=target_id,
        platform=platform,
        cell=cell,
        device=device,
        lock_checksum=lock.checksum,
        devel_image=devel,
        runtime_image=runtime_image,
        builders=builders,
        waves=[[f"build-{name}" for name in wave] for wave in waves],
        runtime=runtime,
        locked_key=_key(runtime_image, [r.line() for r in runtime]),
        runtime_key=runtime_key,
        app_key=_key(runtime_key, app),
        build_memory_gb=budget,
        estimated_peak_gb=max((sum(peaks[f"build-{n}"] for n in wave) for wave in waves), default=0.0),
        runtime_alongside=sum(peaks[f"build-{n}"] for n in (waves[-1] if waves else [])) + RUNTIME_PREP_GB <= budget,
        estimated_minutes=sum(max(minutes[f"build-{n}"] for n in wave) for wave in waves),
        imports=imports,
        env=dict(stack.runtime.env),
    )


def _waves(stages: list[tuple[str, list[str], float]], budget: float) -> list[list[str]]:
    """Group builder stages into waves that run at once: dependencies come in earlier waves, and
    the peaks of one wave add up to no more than the budget."""
    waves: list[list[str]] = []
    load: list[float] = []
    placed: dict[str, int] = {}
    pending = sorted(stages)
    while pending:
        progressed = False
        for name, needs, peak in list(pending):
            if not all(need in placed for need in needs):
                continue
            earliest = max((placed[need] + 1 for need in needs), default=0)
            wave = next((w for w in range(earliest, len(waves)) if load[w] + peak <= budget), len(waves))
            if wave == len(waves):
                waves.append([])
                load.append(0.0)
            waves[wave].append(name)
            load[wave] += peak
            placed[name] = wave
            pending.remove((name, needs, peak))
            progressed = True
        if not progressed:
            raise PlanError(f"source builds depend on each other in a cycle: {', '.join(n for n, _, _ in pending)}")
    return waves
