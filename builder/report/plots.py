"""The figures drawn as PNG with matplotlib's Agg backend: fixed size and dpi, no timestamps or
software names in the file, so the same inputs give the same bytes."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from builder.report.figures import MB, MatrixFigure, RooflineFigure, SizeFigure, TimeFigure, plural

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 100
PASS, FAIL, NEUTRAL, MISSING = "#2e7d32", "#c62828", "#1565c0", "#9e9e9e"
STAGE_COLOURS = ("#1565c0", "#ef6c00", "#6a1b9a", "#00838f", "#ad1457", "#558b2f")


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def png(figure: Figure) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _short(text: str, width: int = 48) -> str:
    return text if len(text) <= width else text[: width - 1] + "\u2026"


def size_plot(figure: SizeFigure) -> bytes:
    panels = 3 if figure.benchmark is not None else 2
    rows = max(len(figure.layers), 1)
    drawn = _figure(11, 2.2 + 0.32 * rows + (1.6 if panels == 3 else 0))
    grid = drawn.add_gridspec(panels, 1, height_ratios=[1.0, max(1.5, 0.32 * rows)] + ([1.4] if panels == 3 else []))

    whole = drawn.add_subplot(grid[0])
    whole.barh([0], [figure.base_bytes / MB], color=MISSING, label=f"base ({plural(figure.base_layers, 'layer')})")
    left = figure.base_bytes / MB
    for index, (stage, size, count) in enumerate(figure.by_stage()):
        colour = STAGE_COLOURS[index % len(STAGE_COLOURS)]
        whole.barh([0], [size / MB], left=[left], color=colour, label=f"{stage} ({plural(count, 'layer')})")
        left += size / MB
    whole.set_yticks([0], ["image"])
    whole.set_xlabel("MB (compressed)")
    whole.set_title(f"{figure.target}: {figure.total_bytes / MB:.1f} MB, {figure.added_bytes / MB:.1f} MB above base")
    whole.legend(loc="lower right", fontsize="small")

    layers = drawn.add_subplot(grid[1])
    stages = [stage for stage, _, _ in figure.by_stage()]
    labels = [_short(f"{layer.stage}: {layer.instruction}") for layer in figure.layers]
    colours = [STAGE_COLOURS[stages.index(layer.stage) % len(STAGE_COLOURS)] for layer in figure.layers]
    positions = list(range(len(figure.layers)))
    layers.barh(positions, [layer.size / MB for layer in figure.layers], color=colours)
    layers.set_yticks(positions, labels, fontsize="small")
    layers.invert_yaxis()
    layers.set_xlabel("MB (compressed) per layer above the base")

    if figure.benchmark is not None:
        bench = figure.benchmark
        tools = ["build stack", "naive"]
        versus = drawn.add_subplot(grid[2])
        above = [bench["above_base_bytes"][tool] / MB for tool in tools]
        base = [(bench["total_bytes"][tool] - bench["above_base_bytes"][tool]) / MB for tool in tools]
        versus.barh(tools, base, color=MISSING, label="base")
        versus.barh(tools, above, left=base, color=STAGE_COLOURS[1], label="above base")
        versus.set_xlabel(f"MB (uncompressed), rebuild benchmark on {bench['target']}")
        versus.legend(loc="lower right", fontsize="small")
    return png(drawn)


def time_plot(figure: TimeFigure) -> bytes:
    rows = max(len(figure.stages), 1)
    drawn = _figure(10, 1.4 + 0.55 * rows)
    axes = drawn.add_subplot()
    height = 0.38
    for offset, (label, colour) in enumerate((("cold", NEUTRAL), ("cached", STAGE_COLOURS[1]))):
        positions = [index + offset * height for index in range(len(figure.stages))]
        seconds = [getattr(stage, label) or 0.0 for stage in figure.stages]
        axes.barh(positions, seconds, height=height, color=colour, label=label)
    for index, stage in enumerate(figure.stages):
        notes = (["wheel cache hit"] if stage.wheel_hit else []) + (
            [f"{stage.engine_cached_steps} cached steps"] if stage.engine_cached_steps else []
        )
        if notes:
            axes.annotate(
                ", ".join(notes),
                (stage.cached or 0.0, index + height),
                xytext=(4, 0),
                textcoords="offset points",
                va="center",
                fontsize="small",
            )
    axes.set_yticks([index + height / 2 for index in range(len(figure.stages))], [s.name for s in figure.stages])
    axes.invert_yaxis()
    axes.set_xlabel("seconds")
    axes.set_title(f"{figure.target}: build time per stage, cold and cached")
    axes.legend(loc="lower right")
    return png(drawn)


def roofline_plot(figure: RooflineFigure) -> bytes:
    drawn = _figure(9, 5.5)
    axes = drawn.add_subplot()
    sizes = [point.gb_per_token for point in figure.points] or [1.0]
    low, high = min(sizes) / 2, max(sizes) * 2
    xs = [low * (high / low) ** (step / 50) for step in range(51)]
    for index, (name, gbps) in enumerate(figure.modes):
        colour = STAGE_COLOURS[index % len(STAGE_COLOURS)]
        axes.plot(xs, [gbps / x for x in xs], color=colour, label=f"roofline {name} ({gbps:g} GB/s)")
    if figure.measured_gbps is not None:
        axes.plot(
            xs, [figure.measured_gbps / x for x in xs], color="black", linestyle="--",
            label=f"measured bandwidth ({figure.measured_gbps:.0f} GB/s)",
        )  # fmt: skip
    for point in figure.points:
        colour = PASS if point.status == "pass" else FAIL
        axes.scatter([point.gb_per_token], [point.tokens_per_s], color=colour, zorder=3)
        axes.annotate(point.check, (point.gb_per_token, point.tokens_per_s), xytext=(5, 5), textcoords="offset points")
        if point.threshold is not None:
            axes.scatter([point.gb_per_token], [point.threshold], marker="_", s=400, color=FAIL, zorder=3)
    if any(point.threshold is not None for point in figure.points):
        axes.scatter([], [], marker="_", s=400, color=FAIL, label="the stack's threshold")
    axes.scatter([], [], color=PASS, label="achieved tok/s")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("GB read per token")
    axes.set_ylabel("tokens / s (batch 1)")
    axes.set_title(f"{figure.device}: decode throughput against the bandwidth roofline")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize="small")
    return png(drawn)


def matrix_plot(figure: MatrixFigure) -> bytes:
    stacks, targets = figure.stacks, figure.targets
    drawn = _figure(max(6.0, 1.9 * len(targets) + 2), 1.2 + 0.9 * len(stacks))
    axes = drawn.add_subplot()
    colours = {"pass": PASS, "fail": FAIL}
    for row, stack in enumerate(stacks):
        for column, target in enumerate(targets):
            cell = figure.cell(stack, target)
            if cell is None:
                continue
            colour = colours.get(cell.smoke, NEUTRAL if cell.build != "not built" else MISSING)
            axes.add_patch(_rectangle(column, row, colour))
            built = "not built" if cell.build == "not built" else f"built {cell.build[:10]}"
            text = f"lock {cell.lock}\n{built}\nverify {cell.verify}\nsmoke {cell.smoke}"
            axes.text(column + 0.5, row + 0.5, text, ha="center", va="center", fontsize=7, color="white")
    axes.set_xlim(0, len(targets))
    axes.set_ylim(len(stacks), 0)
    labels = [target.replace("/", "/\n") for target in targets]
    axes.set_xticks([c + 0.5 for c in range(len(targets))], labels, fontsize="small")
    axes.set_yticks([r + 0.5 for r in range(len(stacks))], stacks)
    axes.set_title("stacks x cells (colour: smoke pass, fail, built, not built)")
    return png(drawn)


def _rectangle(column: int, row: int, colour: str) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((column + 0.03, row + 0.05), 0.94, 0.9, color=colour)
