"""What each plot shows, and its caption, from what the report read: pure functions of values.

Every caption says what was measured and when, with the numbers of its input (the tests hold the
captions to them)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from builder.catalogue.models import Device, Stack
from builder.report.inputs import TargetInputs

MB = 1e6
LAYER_INSTRUCTIONS = ("RUN", "COPY", "ADD")
# BuildKit also makes a layer of each WORKDIR (the directory it creates); buildah does not.
MAYBE_LAYER_INSTRUCTIONS = ("WORKDIR",)


def mb(size: int) -> str:
    return f"{size / MB:.1f} MB"


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


# ---------------------------------------------------------------- image size


@dataclass(frozen=True)
class Layer:
    stage: str
    instruction: str
    size: int


@dataclass(frozen=True)
class SizeFigure:
    target: str
    base: str
    base_bytes: int
    base_layers: int
    total_bytes: int
    added_bytes: int
    layers: tuple[Layer, ...]  # the layers above the base, in order
    finished: str
    benchmark: dict[str, Any] | None = None

    def by_stage(self) -> list[tuple[str, int, int]]:
        """(stage, bytes, layers) in build order."""
        totals: dict[str, list[int]] = {}
        for layer in self.layers:
            totals.setdefault(layer.stage, []).append(layer.size)
        return [(stage, sum(sizes), len(sizes)) for stage, sizes in totals.items()]

    @property
    def caption(self) -> str:
        stages = "; ".join(f"{stage} {mb(size)} in {plural(count, 'layer')}" for stage, size, count in self.by_stage())
        text = (
            f"Image size on {self.target}: {mb(self.total_bytes)} compressed in "
            f"{plural(self.base_layers + len(self.layers), 'layer')}, of which the base {self.base} is "
            f"{mb(self.base_bytes)} in {plural(self.base_layers, 'layer')} and {mb(self.added_bytes)} is added above "
            f"it ({stages or 'no layers'}). Measured from the pushed manifest's layer sizes, build finished "
            f"{self.finished}."
        )
        if self.benchmark is not None:
            bench = self.benchmark
            ours, naive = bench["above_base_bytes"]["build stack"], bench["above_base_bytes"]["naive"]
            text += (
                f" Rebuild benchmark on {bench['target']} ({bench['measured']}), uncompressed image sizes: "
                f"build stack {mb(ours)} above its runtime base ({mb(bench['total_bytes']['build stack'])} in all), "
                f"a naive single-stage build {mb(naive)} above its devel base "
                f"({mb(bench['total_bytes']['naive'])} in all)."
            )
        return text


def logical_lines(dockerfile: str) -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    lines, current = [], ""
    for raw in dockerfile.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1].strip() + " "
            continue
        lines.append((current + stripped).strip())
        current = ""
    if current.strip():
        lines.append(current.strip())
    return lines


def dockerfile_layers(dockerfile: str, target: str = "app", *, workdir_layers: bool = False) -> list[tuple[str, str]]:
    """(stage, instruction) of every layer-making instruction of `target` and the stages it is
    built FROM, in build order; the base image's own layers are not among them."""
    making = LAYER_INSTRUCTIONS + (MAYBE_LAYER_INSTRUCTIONS if workdir_layers else ())
    stages: dict[str, tuple[str, list[str]]] = {}
    current: list[str] | None = None
    for line in logical_lines(dockerfile):
        keyword, _, rest = line.partition(" ")
        if keyword.upper() == "FROM":
            match = re.fullmatch(r"(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", rest.strip(), re.IGNORECASE)
            if match is None:
                current = None
                continue
            current = []
            stages[match.group(2) or match.group(1)] = (match.group(1), current)
        elif current is not None and keyword.upper() in making:
            words = [word for word in rest.split() if not word.startswith("--")]
            current.append(" ".join([keyword.upper(), *words]))
    chain = []
    name = target
    while name in stages and name not in chain:
        chain.append(name)
        name = stages[name][0]
    return [(stage, instruction) for stage in reversed(chain) for instruction in stages[stage][1]]


def size_figure(inputs: TargetInputs, benchmark: dict[str, Any] | None) -> SizeFigure | None:
    result = inputs.result
    if result is None:
        return None
    sizes = result["sizes"]
    each = [int(size) for size in sizes.get("layer_bytes", [])]
    base_layers = int(sizes.get("base_layers", 0))
    added = each[base_layers:]
    readings = [dockerfile_layers(inputs.dockerfile or "", workdir_layers=flag) for flag in (False, True)]
    named = next((reading for reading in readings if len(reading) == len(added)), None)
    if named is None:  # an engine that squashed or split layers otherwise: number them instead
        named = [("image", f"layer {index}") for index in range(base_layers + 1, base_layers + len(added) + 1)]
    return SizeFigure(
        target=inputs.target,
        base=str(result.get("base", {}).get("runtime", "(unknown)")),
        base_bytes=int(sizes["base_bytes"]),
        base_layers=base_layers,
        total_bytes=int(sizes["layers_bytes"]),
        added_bytes=int(sizes["added_bytes"]),
        layers=tuple(Layer(stage, instruction, size) for (stage, instruction), size in zip(named, added, strict=True)),
        finished=str(result["finished"]),
        benchmark=benchmark,
    )


# ---------------------------------------------------------------- build time


@dataclass(frozen=True)
class StageTime:
    name: str
    cold: float | None  # seconds in the cold build (None: not in it)
    cached: float | None
    wheel_hit: bool  # the cached build took this stage's wheels from the wheel cache
    engine_cached_steps: int  # steps the engine took from its layer cache in the cached build


@dataclass(frozen=True)
class TimeFigure:
    target: str
    cold: dict[str, Any]  # the build (a builds.jsonl line) that took least from the caches
    cached: dict[str, Any] | None  # the latest build that took more from them
    stages: tuple[StageTime, ...]

    @property
    def caption(self) -> str:
        parts = []
        for label, build in (("cold", self.cold), ("cached", self.cached)):
            if build is None:
                parts.append(f"no {label} build recorded")
                continue
            hits, steps = cache_use(build)
            parts.append(
                f"{label} build started {build['started']}: {build['seconds']:.2f} s in all, "
                f"{plural(hits, 'wheel-cache hit')}, {plural(steps, 'engine step')} from the layer cache"
            )
        per_stage = "; ".join(
            f"{stage.name} {_seconds(stage.cold)} cold, {_seconds(stage.cached)} cached" for stage in self.stages
        )
        hits_now = [stage.name for stage in self.stages if stage.wheel_hit]
        return (
            f"Build time per stage on {self.target}, wall-clock seconds of each engine run ({per_stage}). "
            f"{'; '.join(parts)}. Stages from the wheel cache in the cached build: {', '.join(hits_now) or 'none'}."
        )


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def cache_use(build: dict[str, Any]) -> tuple[int, int]:
    """(stages from the wheel cache, steps from the engine's layer cache) of one build."""
    stages = build["stages"]
    return sum(bool(s.get("cached")) for s in stages), sum(int(s.get("engine_cached_steps") or 0) for s in stages)


def time_figure(inputs: TargetInputs) -> TimeFigure | None:
    builds = inputs.builds
    if not builds:
        return None
    order = range(len(builds))
    cold = builds[min(order, key=lambda index: (cache_use(builds[index]), -index))]
    cached = next((build for build in reversed(builds) if cache_use(build) > cache_use(cold)), None)
    names: list[str] = []
    for build in (cold, cached):
        for stage in (build or {}).get("stages", []):
            if stage["name"] not in names:
                names.append(stage["name"])

    def find(build: dict[str, Any] | None, name: str) -> dict[str, Any] | None:
        return next((stage for stage in (build or {}).get("stages", []) if stage["name"] == name), None)

    stages = []
    for name in names:
        was, now = find(cold, name), find(cached, name)
        stages.append(
            StageTime(
                name=name,
                cold=None if was is None else float(was["seconds"]),
                cached=None if now is None else float(now["seconds"]),
                wheel_hit=bool(now and now.get("cached")),
                engine_cached_steps=int((now or {}).get("engine_cached_steps") or 0),
            )
        )
    return TimeFigure(inputs.target, cold, cached, tuple(stages))


# ---------------------------------------------------------------- smoke throughput against the roofline


@dataclass(frozen=True)
class Point:
    check: str
    gb_per_token: float
    tokens_per_s: float
    threshold: float | None  # the stack's floor in tok/s
    status: str
    path: str | None


@dataclass(frozen=True)
class RooflineFigure:
    target: str
    device: str
    modes: tuple[tuple[str, float], ...]  # (power mode, GB/s) from the device profile
    active_mode: str | None
    measured_gbps: float | None  # the smoke run's own bandwidth probe
    points: tuple[Point, ...]
    started: str
    finished: str

    @property
    def caption(self) -> str:
        modes = ", ".join(f"{name} {gbps:.1f} GB/s" for name, gbps in self.modes)
        measured = f"{self.measured_gbps:.1f} GB/s" if self.measured_gbps is not None else "not measured"
        points = "; ".join(
            f"{point.check} {point.tokens_per_s:.1f} tok/s at {point.gb_per_token:.3f} GB/token "
            f"({point.status}; threshold {_floor(point.threshold)})"
            for point in self.points
        )
        return (
            f"Batch-1 decode throughput on {self.device} ({self.target}) against the memory-bandwidth roofline "
            f"(tok/s = GB/s / GB read per token): {points}. Roofline per power mode from the device profile: "
            f"{modes}; active mode {self.active_mode or 'unknown'}; measured read bandwidth {measured}. "
            f"Smoke run {self.started} to {self.finished}."
        )


def _floor(threshold: float | None) -> str:
    return "none" if threshold is None else f">= {threshold:g} tok/s"


def roofline_figure(inputs: TargetInputs, stack: Stack, device: Device) -> RooflineFigure | None:
    smoke = inputs.smoke
    if smoke is None:
        return None
    floors = {check.name: check.min for check in stack.smoke}
    measured = None
    points = []
    for check in smoke["checks"]:
        details = check.get("details") or {}
        if check.get("name") == "memory-bandwidth" and isinstance(check.get("value"), (int, float)):
            measured = float(check["value"])
        if check.get("unit") == "tok/s" and isinstance(details.get("gb_per_token"), (int, float)):
            points.append(
                Point(
                    check=str(check["name"]),
                    gb_per_token=float(details["gb_per_token"]),
                    tokens_per_s=float(check["value"]),
                    threshold=floors.get(str(check["name"])),
                    status=str(check.get("status")),
                    path=check.get("path"),
                )
            )
    return RooflineFigure(
        target=inputs.target,
        device=device.name,
        modes=tuple((mode.name, mode.memory_bandwidth_gbps) for mode in device.power_modes),
        active_mode=(smoke.get("power_mode") or {}).get("active"),
        measured_gbps=measured,
        points=tuple(points),
        started=str(smoke.get("started", "(unknown)")),
        finished=str((smoke.get("builder") or {}).get("finished", "(unknown)")),
    )


# ---------------------------------------------------------------- the matrix


@dataclass(frozen=True)
class MatrixCell:
    stack: str
    target: str
    lock: str  # "3 d, fresh", "12 d, stale", "none", "unreadable"
    build: str  # the last build's end time, or "not built"
    verify: str  # "pass", "fail", "not run"
    smoke: str  # "pass", "fail", "not run"


@dataclass(frozen=True)
class MatrixFigure:
    cells: tuple[MatrixCell, ...]
    now: datetime

    @property
    def stacks(self) -> list[str]:
        return list(dict.fromkeys(cell.stack for cell in self.cells))

    @property
    def targets(self) -> list[str]:
        return list(dict.fromkeys(cell.target for cell in self.cells))

    def cell(self, stack: str, target: str) -> MatrixCell | None:
        return next((c for c in self.cells if c.stack == stack and c.target == target), None)

    @property
    def caption(self) -> str:
        counts = {what: sum(getattr(cell, what) == "pass" for cell in self.cells) for what in ("verify", "smoke")}
        built = sum(cell.build != "not built" for cell in self.cells)
        locked = sum(cell.lock not in ("none", "unreadable") for cell in self.cells)
        return (
            f"The matrix: {plural(len(self.stacks), 'stack')} x {plural(len(self.targets), 'cell')} "
            f"({plural(len(self.cells), 'target')}): {locked} locked, {built} built, {counts['verify']} verified, "
            f"{counts['smoke']} passed their smoke tests. Lock age from image-lock.json's modification time and "
            f"freshness against the catalogue, as of {stamp(self.now)}; last build, verify and smoke from "
            f"out/<stack>/<target>/."
        )


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def lock_text(inputs: TargetInputs, now: datetime) -> str:
    if inputs.lock_problem is not None:
        return "unreadable"
    if inputs.lock is None:
        return "none"
    days = max(0.0, (now - inputs.lock.modified).total_seconds() / 86400)
    return f"{days:.0f} d, {'stale' if inputs.lock.changes else 'fresh'}"


def status_of(report: dict[str, Any] | None, *, smoke: bool) -> str:
    if report is None:
        return "not run"
    if smoke:
        return str((report.get("summary") or {}).get("result") or "not run")
    return "pass" if report.get("ok") else "fail"


def matrix_cell(inputs: TargetInputs, now: datetime) -> MatrixCell:
    return MatrixCell(
        stack=inputs.stack,
        target=inputs.target,
        lock=lock_text(inputs, now),
        build=str(inputs.result["finished"]) if inputs.result is not None else "not built",
        verify=status_of(inputs.verify, smoke=False),
        smoke=status_of(inputs.smoke, smoke=True),
    )
