"""The report as values (sections, facts, plots with captions), then as report.html (PNGs embedded as
data: URIs, so the page stands alone), report.md (CI's job summary) and the PNGs beside them."""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from builder.catalogue.documents import Catalogue
from builder.catalogue.models import Stack
from builder.fsutil import write_atomic_bytes
from builder.report import figures
from builder.report.inputs import TargetInputs

TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class Plot:
    name: str  # the PNG's file name without .png
    title: str
    caption: str
    png: bytes

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode()


@dataclass(frozen=True)
class Section:
    target: str
    facts: list[tuple[str, str]]
    plots: list[Plot] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)  # (plot title, "not built" / "not run")


@dataclass(frozen=True)
class Report:
    stack: str
    generated: str
    sections: list[Section]
    matrix: Plot
    cells: Sequence[figures.MatrixCell]

    @property
    def plots(self) -> list[Plot]:
        return [plot for section in self.sections for plot in section.plots] + [self.matrix]


def _facts(inputs: TargetInputs) -> list[tuple[str, str]]:
    facts = []
    result = inputs.result
    if result is None:
        facts.append(("image", "not built"))
    else:
        image = result["image"]
        facts += [
            ("image", str(image.get("reference"))),
            ("engine", f"{result.get('engine', {}).get('name')} {result.get('engine', {}).get('version')}"),
            ("built", f"{result.get('started')} to {result['finished']} ({result.get('seconds')} s)"),
            ("lock checksum", str(result.get("lock-checksum"))),
        ]
        sbom = result.get("sbom")
        facts.append(("SBOM", f"{sbom['packages']} packages, {sbom['locked']} locked" if sbom else "none"))
        attested = ", ".join(a["type"] for a in result.get("attestations", []))
        facts.append(("signed", f"yes; attested: {attested or 'nothing'}" if "signature" in result else "no"))
    if inputs.lock is not None:
        state = "fresh" if not inputs.lock.changes else "stale: " + "; ".join(inputs.lock.changes)
        facts.append(("lock", f"{inputs.lock.path}, written {figures.stamp(inputs.lock.modified)}, {state}"))
    else:
        facts.append(("lock", inputs.lock_problem or "none"))
    verify = inputs.verify
    facts.append(("verify", "not run" if verify is None else ("pass" if verify.get("ok") else "fail")))
    smoke = inputs.smoke
    if smoke is None:
        facts.append(("smoke", "not run"))
    else:
        summary = smoke.get("summary") or {}
        facts.append(
            (
                "smoke",
                f"{summary.get('result')}: {summary.get('passed')} passed, {summary.get('failed')} failed, "
                f"{summary.get('not_run')} not run ({smoke.get('started')})",
            )
        )
    return facts


Draw = Callable[[Any], bytes]


def section(
    inputs: TargetInputs, stack: Stack, catalogue: Catalogue, benchmark: dict[str, Any] | None, draw: dict[str, Draw]
) -> Section:
    slug = inputs.target.replace("/", "-")
    done = Section(inputs.target, _facts(inputs))
    made: list[tuple[str, str, Any, str]] = [
        ("size", "Image size by stage and layer", figures.size_figure(inputs, benchmark), "not built"),
        ("time", "Build time per stage, cold and cached", figures.time_figure(inputs), "not built"),
        (
            "roofline",
            "Smoke throughput against the bandwidth roofline",
            figures.roofline_figure(inputs, stack, catalogue.device_of(inputs.target)),
            "not run",
        ),
    ]
    for name, title, figure, absent in made:
        if figure is None:
            done.missing.append((title, absent))
        else:
            done.plots.append(Plot(f"{name}-{slug}", title, figure.caption, draw[name](figure)))
    return done


def make_report(
    catalogue: Catalogue,
    stack: Stack,
    targets: list[TargetInputs],
    matrix: list[TargetInputs],
    benchmark: dict[str, Any] | None,
    now: datetime,
) -> Report:
    from builder.report import plots

    draw: dict[str, Draw] = {"size": plots.size_plot, "time": plots.time_plot, "roofline": plots.roofline_plot}
    sections = [section(inputs, stack, catalogue, benchmark, draw) for inputs in targets]
    grid = figures.MatrixFigure(tuple(figures.matrix_cell(inputs, now) for inputs in matrix), now)
    matrix_plot = Plot("matrix", "The matrix: stacks x cells", grid.caption, plots.matrix_plot(grid))
    return Report(stack.name, figures.stamp(now), sections, matrix_plot, grid.cells)


def _environment(autoescape: bool) -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        autoescape=autoescape,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(report: Report) -> str:
    return str(_environment(True).get_template("report.html.j2").render(report=report))


def render_markdown(report: Report) -> str:
    return str(_environment(False).get_template("report.md.j2").render(report=report))


def write_report(report: Report, out: Path) -> dict[str, Path]:
    """report.html, report.md and each plot's PNG in `out`; other files there are left alone."""
    out.mkdir(parents=True, exist_ok=True)
    written = {"html": out / "report.html", "markdown": out / "report.md"}
    for plot in report.plots:
        write_atomic_bytes(out / f"{plot.name}.png", plot.png, mode=0o644)
        written[plot.name] = out / f"{plot.name}.png"
    write_atomic_bytes(written["html"], render_html(report).encode(), mode=0o644)
    write_atomic_bytes(written["markdown"], render_markdown(report).encode(), mode=0o644)
    return written
