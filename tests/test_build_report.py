"""`build report`: figures and captions from their inputs (the numbers in each caption are the
input's), PNGs that are real and the same for the same inputs, missing inputs shown as such, bad
ones named; and, end to end, a report of a real sandbox build loaded in headless Chromium."""

from __future__ import annotations

import base64
import json
import shlex
import shutil
import struct
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from builder.report import figures, plots
from builder.report.inputs import TargetInputs
from builder.validate import load_catalogue
from tests.conftest import ROOT, run_cli
from tests.test_stack_e2e import _exports, build

H200_SMOKE = ROOT / "docs" / "h200-smoke" / "build-smoke" / "smoke.json"
H200 = ("reference-h200", "h200/ubuntu24.04-cu130")
LOCKS = ROOT / "tests" / "fixtures" / "locks"
GOLDEN_DOCKERFILE = ROOT / "tests" / "golden" / "maie-jetson" / "orin-nano-super__jp6.2-cu126" / "Dockerfile"
ARTIFACTS = ROOT / "out" / "ci-artifacts"  # git-ignored; CI uploads it
NOW = datetime(2026, 12, 2, tzinfo=timezone.utc)


def png_size(data: bytes) -> tuple[int, int]:
    """A PNG's width and height from its IHDR chunk (and proof that it is a PNG)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def h200_inputs(**extra: Any) -> TargetInputs:
    return TargetInputs(*H200, Path("unused"), smoke=json.loads(H200_SMOKE.read_text()), **extra)


def result_with(layers: list[int], base_layers: int, **extra: Any) -> dict[str, Any]:
    return {
        "image": {"reference": "registry.lan/maie@sha256:" + "a" * 64},
        "base": {"runtime": "nvcr.io/nvidia/l4t-tensorrt@sha256:" + "1" * 64},
        "sizes": {
            "layers_bytes": sum(layers),
            "base_bytes": sum(layers[:base_layers]),
            "added_bytes": sum(layers[base_layers:]),
            "layers": len(layers),
            "layer_bytes": layers,
            "base_layers": base_layers,
        },
        "stages": [],
        "started": "2026-11-30T10:00:00Z",
        "finished": "2026-11-30T10:05:00Z",
        **extra,
    }


def build_line(started: str, stages: list[tuple[str, float, bool, int]]) -> dict[str, Any]:
    return {
        "started": started,
        "seconds": round(sum(seconds for _, seconds, _, _ in stages) + 1.5, 2),
        "stages": [
            {"name": name, "seconds": seconds, "cached": hit, "engine_cached_steps": steps}
            for name, seconds, hit, steps in stages
        ],
    }


# ---------------------------------------------------------------- roofline


def test_the_roofline_shows_each_decode_check_against_each_power_mode_with_the_stacks_thresholds() -> None:
    catalogue = load_catalogue(ROOT)
    stack = catalogue.stack(H200[0]).model
    smoke = json.loads(H200_SMOKE.read_text())
    figure = figures.roofline_figure(h200_inputs(), stack, catalogue.device_of(H200[1]))
    assert figure is not None

    decode = [c for c in smoke["checks"] if c.get("unit") == "tok/s"]
    assert [p.check for p in figure.points] == [c["name"] for c in decode] and len(decode) == 4
    floors = {check.name: check.min for check in stack.smoke}
    for check in decode:
        gb = check["details"]["gb_per_token"]
        expected = f"{check['name']} {check['value']:.1f} tok/s at {gb:.3f} GB/token (pass; threshold >= {floors[check['name']]:g} tok/s)"
        assert expected in figure.caption
    assert figure.modes == (("700W", 4800.0),)
    assert "700W 4800.0 GB/s" in figure.caption and "active mode 700W" in figure.caption
    bandwidth = next(c["value"] for c in smoke["checks"] if c["name"] == "memory-bandwidth")
    assert f"measured read bandwidth {bandwidth:.1f} GB/s" in figure.caption
    assert f"Smoke run {smoke['started']} to {smoke['builder']['finished']}" in figure.caption

    drawn = plots.roofline_plot(figure)
    assert png_size(drawn) == (900, 550)
    assert plots.roofline_plot(figure) == drawn  # the same inputs, the same bytes


def test_a_jetson_roofline_has_one_line_per_power_mode() -> None:
    catalogue = load_catalogue(ROOT)
    device = catalogue.device_of("orin-nano-super/jp6.2-cu126")
    stack = catalogue.stack(H200[0]).model
    figure = figures.roofline_figure(h200_inputs(), stack, device)
    assert figure is not None and len(figure.modes) == len(device.power_modes) >= 2
    for mode in device.power_modes:
        assert f"{mode.name} {mode.memory_bandwidth_gbps:.1f} GB/s" in figure.caption
    assert png_size(plots.roofline_plot(figure))[0] > 0


# ---------------------------------------------------------------- size


def test_layers_above_the_base_are_named_by_their_stage_and_instruction() -> None:
    layers = figures.dockerfile_layers(GOLDEN_DOCKERFILE.read_text())
    assert [stage for stage, _ in layers] == ["runtime"] * 3 + ["app"]  # apt, locked wheels, built wheels
    assert "installing locked wheels" in layers[1][1] and "installing built wheels" in layers[2][1]
    assert layers[-1] == ("app", "COPY smoke/ /opt/builder/smoke/")
    assert layers[0][1].startswith("RUN ") and "--mount" not in layers[0][1]  # flags dropped
    dockerfile = (
        "FROM base AS runtime\nRUN a\nFROM runtime AS app\nWORKDIR /app\nCOPY x /app/\nFROM other AS unused\nRUN b\n"
    )
    assert figures.dockerfile_layers(dockerfile) == [("runtime", "RUN a"), ("app", "COPY x /app/")]
    with_workdir = figures.dockerfile_layers(dockerfile, workdir_layers=True)
    assert with_workdir == [("runtime", "RUN a"), ("app", "WORKDIR /app"), ("app", "COPY x /app/")]
    result = result_with([100, 1, 2, 3], 1)
    inputs = TargetInputs("s", "t", Path("x"), result=result, dockerfile=dockerfile)
    figure = figures.size_figure(inputs, None)
    assert figure is not None and [layer.instruction for layer in figure.layers] == [
        "RUN a",
        "WORKDIR /app",
        "COPY x /app/",
    ]


def test_the_size_caption_carries_the_results_numbers_by_stage() -> None:
    sizes = [30_000_000, 20_000_000, 1_234_567, 8_000_000, 2_000_000, 4_096]
    result = result_with(sizes, 2)
    inputs = TargetInputs("maie-jetson", "orin-nano-super/jp6.2-cu126", Path("x"), result=result,
                          dockerfile=GOLDEN_DOCKERFILE.read_text())  # fmt: skip
    figure = figures.size_figure(inputs, None)
    assert figure is not None
    runtime = sum(sizes[2:5])
    assert figure.by_stage() == [("runtime", runtime, 3), ("app", 4_096, 1)]
    caption = figure.caption
    assert f"{sum(sizes) / 1e6:.1f} MB compressed in 6 layers" in caption
    assert f"is {50.0:.1f} MB in 2 layers and {sum(sizes[2:]) / 1e6:.1f} MB is added" in caption
    assert f"runtime {runtime / 1e6:.1f} MB in 3 layers; app 0.0 MB in 1 layer" in caption
    assert result["base"]["runtime"] in caption and result["finished"] in caption
    assert png_size(plots.size_plot(figure))[1] > 0


def test_layers_the_dockerfile_does_not_explain_are_numbered_and_the_naive_build_compared() -> None:
    bench = {
        "target": "standin-amd64/debian12-cu126",
        "measured": "2026-11-29T08:00:00Z",
        "seconds": {},
        "above_base_bytes": {"build stack": 25_100_000, "naive": 412_300_000},
        "total_bytes": {"build stack": 140_000_000, "naive": 960_000_000},
    }
    inputs = TargetInputs("s", "t", Path("x"), result=result_with([10, 20, 30], 1), dockerfile="FROM scratch AS app\n")
    figure = figures.size_figure(inputs, bench)
    assert figure is not None
    assert [(layer.stage, layer.instruction) for layer in figure.layers] == [("image", "layer 2"), ("image", "layer 3")]
    assert "build stack 25.1 MB above its runtime base (140.0 MB in all)" in figure.caption
    assert "a naive single-stage build 412.3 MB above its devel base (960.0 MB in all)" in figure.caption
    assert "2026-11-29T08:00:00Z" in figure.caption
    assert png_size(plots.size_plot(figure))[1] > png_size(plots.size_plot(figures.size_figure(inputs, None)))[1]  # type: ignore[arg-type]


# ---------------------------------------------------------------- time


def test_cold_and_cached_builds_are_told_apart_by_their_cache_use() -> None:
    cold = build_line("2026-11-30T10:00:00Z", [("build-standin-ext", 61.25, False, 0), ("runtime+app", 20.5, False, 2)])
    warm = build_line("2026-11-30T11:00:00Z", [("build-standin-ext", 0.0, True, 0), ("runtime+app", 3.75, False, 9)])
    figure = figures.time_figure(TargetInputs("s", "t", Path("x"), builds=[cold, warm, cold | {"started": "late"}]))
    assert figure is not None
    assert figure.cold["started"] == "late" and figure.cached is warm  # the latest of the least cached
    assert [(s.name, s.cold, s.cached, s.wheel_hit) for s in figure.stages] == [
        ("build-standin-ext", 61.25, 0.0, True),
        ("runtime+app", 20.5, 3.75, False),
    ]
    caption = figure.caption
    assert "build-standin-ext 61.25 s cold, 0.00 s cached; runtime+app 20.50 s cold, 3.75 s cached" in caption
    assert f"cold build started late: {cold['seconds']:.2f} s in all, 0 wheel-cache hits, 2 engine steps" in caption
    assert (
        f"cached build started {warm['started']}: {warm['seconds']:.2f} s in all, 1 wheel-cache hit, 9 engine"
        in caption
    )
    assert "Stages from the wheel cache in the cached build: build-standin-ext." in caption
    assert png_size(plots.time_plot(figure))[0] == 1000


def test_a_single_build_has_no_cached_counterpart() -> None:
    only = build_line("2026-11-30T10:00:00Z", [("runtime+app", 20.5, False, 0)])
    figure = figures.time_figure(TargetInputs("s", "t", Path("x"), builds=[only]))
    assert figure is not None and figure.cached is None
    assert "runtime+app 20.50 s cold, - cached" in figure.caption and "no cached build recorded" in figure.caption
    assert figures.time_figure(TargetInputs("s", "t", Path("x"))) is None


# ---------------------------------------------------------------- matrix


def test_the_matrix_counts_what_each_cell_has() -> None:
    catalogue = load_catalogue(ROOT)
    from builder.report.inputs import read_lock_state

    lock, problem = read_lock_state(catalogue, LOCKS, *H200)
    assert problem is None and lock is not None and lock.changes == ()
    cells = (
        figures.matrix_cell(h200_inputs(lock=lock, verify={"ok": True, "checks": []}), NOW),
        figures.matrix_cell(TargetInputs("vla-orin", "orin-nano-super/jp6.2.1-cu126", Path("x")), NOW),
    )
    assert cells[0].smoke == "pass" and cells[0].verify == "pass" and cells[0].lock.endswith(", fresh")
    assert (cells[1].lock, cells[1].build, cells[1].verify, cells[1].smoke) == (
        "none",
        "not built",
        "not run",
        "not run",
    )
    grid = figures.MatrixFigure(cells, NOW)
    assert grid.caption.startswith(
        "The matrix: 2 stacks x 2 cells (2 targets): 1 locked, 0 built, 1 verified, 1 passed"
    )
    assert "as of 2026-12-02T00:00:00Z" in grid.caption
    assert png_size(plots.matrix_plot(grid))[0] > 0


# ---------------------------------------------------------------- the command


def h200_results(tmp_path: Path) -> Path:
    results = tmp_path / "out"
    directory = results / H200[0] / H200[1]
    directory.mkdir(parents=True)
    shutil.copy(H200_SMOKE, directory / "smoke.json")
    return results


def report(tmp_path: Path, results: Path, *extra: str) -> Any:
    return run_cli("report", H200[0], "--root", str(ROOT), "--results", str(results), "--lock-dir", str(LOCKS),
                   "--out", str(tmp_path / "report"), *extra)  # fmt: skip


def test_missing_results_are_shown_as_not_built_and_not_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(int(NOW.timestamp())))
    done = report(tmp_path, tmp_path / "nothing-here", "--json")
    assert done.code == 0, done.err
    written = json.loads(done.out)
    html = Path(written["html"]).read_text()
    assert "Image size by stage and layer: not built." in html
    assert "Smoke throughput against the bandwidth roofline: not run." in html
    assert "<img" in html and html.count("data:image/png;base64,") == 1  # the matrix only
    markdown = Path(written["markdown"]).read_text()
    assert "| reference-h200 | h200/ubuntu24.04-cu130 |" in markdown and "not built" in markdown
    assert "Generated 2026-12-02T00:00:00Z" in markdown


def test_the_page_embeds_every_plot_with_its_caption(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(int(NOW.timestamp())))
    results = h200_results(tmp_path)
    assert report(tmp_path, results).code == 0
    html = (tmp_path / "report" / "report.html").read_text()
    roofline = tmp_path / "report" / "roofline-h200-ubuntu24.04-cu130.png"
    assert png_size(roofline.read_bytes())[0] > 0
    assert "data:image/png;base64," + base64.b64encode(roofline.read_bytes()).decode() in html
    assert "378.4 tok/s at 3.594 GB/token" in html
    first = {path.name: path.read_bytes() for path in (tmp_path / "report").iterdir()}
    assert report(tmp_path, results).code == 0
    assert {path.name: path.read_bytes() for path in (tmp_path / "report").iterdir()} == first  # reproducible


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("result.json", '{"image": {},\n  "sizes": oops}', "result.json:2:12: error: not JSON: Expecting value"),
        ("result.json", "[1, 2]", "result.json:1:1: error: expected a JSON object, found list"),
        ("smoke.json", '{"checks": []}', "smoke.json:1:1: error: has no 'summary' (not written by this builder?)"),
        ("builds.jsonl", '{"stages": []}\n{"stages": [}\n', "builds.jsonl:2:13: error: not JSON: Expecting value"),
        ("builds.jsonl", '{"stages": []}\n\n[]\n', "builds.jsonl:3:1: error: expected a build with its stages"),
    ],
)
def test_bad_input_is_one_line_naming_the_file(tmp_path: Path, name: str, text: str, expected: str) -> None:
    results = h200_results(tmp_path)
    (results / H200[0] / H200[1] / name).write_text(text)
    done = report(tmp_path, results)
    assert done.code == 2
    assert len(done.err.splitlines()) == 1 and expected in done.err, done.err


def test_bad_benchmark_figures_and_options(tmp_path: Path) -> None:
    bench = tmp_path / "rebuild.json"
    bench.write_text('{"target": "t", "measured": "m", "seconds": {}, "above_base_bytes": 3, "total_bytes": {}}')
    done = report(tmp_path, tmp_path / "out", "--benchmark", str(bench))
    assert done.code == 2 and "rebuild.json:1:1: error: 'above_base_bytes' needs integer" in done.err
    missing = report(tmp_path, tmp_path / "out", "--benchmark", str(tmp_path / "none.json"))
    assert missing.code == 2 and "none.json:1:1: error: no such file" in missing.err
    (tmp_path / "report").write_text("a file")
    assert report(tmp_path, tmp_path / "out").code == 2
    wrong = run_cli("report", H200[0], "--root", str(ROOT), "--target", "h200/nope")
    assert wrong.code == 2 and "not a target of stack 'reference-h200'" in wrong.err


# ---------------------------------------------------------------- end to end: a real build, a real browser


def load_in_chromium(page: Path, screenshot: Path) -> dict[str, Any]:
    """Open `page` in Debian's headless Chromium: every image's natural size, the console's errors,
    the page's text; a full-page screenshot is kept."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1200,900",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=options)
    try:
        driver.get(page.resolve().as_uri())
        images = driver.execute_script(
            "return Array.from(document.images).map(i => ({alt: i.alt, complete: i.complete, width: i.naturalWidth}))"
        )
        text = driver.execute_script("return document.body.innerText")
        logged = driver.get_log("browser")  # type: ignore[no-untyped-call]
        errors = [entry for entry in logged if entry["level"] in ("SEVERE", "WARNING")]
        # The window's height counts its frame too: leave room below the page's last pixel.
        driver.set_window_size(1200, driver.execute_script("return document.documentElement.scrollHeight") + 200)
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(screenshot))
    finally:
        driver.quit()
    return {"images": images, "errors": errors, "text": text}


@pytest.mark.integration
def test_a_sandbox_builds_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    up = subprocess.run([str(ROOT / "tests/sandbox/up")], capture_output=True, text=True, check=False, timeout=3000)
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        sandbox_report(_exports(up.stdout), tmp_path)
    finally:
        subprocess.run([str(ROOT / "tests/sandbox/down")], capture_output=True, check=False, timeout=60)


def sandbox_report(exports: dict[str, str], tmp_path: Path) -> None:
    """Build the sandbox stack twice (the second from the wheel cache), then report it."""
    target = "standin-amd64/debian12-cu126"
    work = tmp_path / "work"
    args = ["--root", exports["BUILDER_SANDBOX_ROOT"], *shlex.split(exports["BUILDER_SANDBOX_ARGS"])]
    args += ["--index", f"default={exports['BUILDER_SANDBOX_INDEX']}", "--lock-dir", str(work / "locks")]
    sandbox = {"exports": exports, "args": args, "work": work}
    assert run_cli("lock", "sandbox", *args, "--target", target, "--cache-dir", str(work / "lock-cache")).code == 0
    registry = f"{exports['BUILDER_SANDBOX_REGISTRY']}/report"
    cold = build(sandbox, "docker", target, "--registry", registry, "--push")
    # --force: the same inputs again would take the fast path, which builds nothing to compare
    cached = build(sandbox, "docker", target, "--registry", registry, "--push", "--force")
    assert cached["wheel_cache"]["standin-ext"]["cache_hit"] is True

    out = tmp_path / "report"
    done = run_cli("report", "sandbox", *args[:2], "--lock-dir", str(work / "locks"), "--target", target,
                   "--results", str(work / "out-docker"), "--out", str(out), "--json")  # fmt: skip
    assert done.code == 0, done.err
    html = (out / "report.html").read_text()
    slug = target.replace("/", "-")
    for name in (f"size-{slug}", f"time-{slug}", "matrix"):
        assert png_size((out / f"{name}.png").read_bytes())[0] > 0
    # The captions carry the build's own numbers.
    sizes = cached["sizes"]
    assert f"{sizes['layers_bytes'] / 1e6:.1f} MB compressed in {sizes['layers']} layers" in html
    assert f"{sizes['added_bytes'] / 1e6:.1f} MB is added above" in html
    assert sizes["base_layers"] + len(sizes["layer_bytes"][sizes["base_layers"] :]) == sizes["layers"]
    assert "is added above it (runtime " in html and " layers; app " in html  # each layer named by its stage
    stage = next(s for s in cold["stages"] if s["name"] == "build-standin-ext")
    assert f"build-standin-ext {stage['seconds']:.2f} s cold, 0.00 s cached" in html
    assert f"cold build started {cold['started']}" in html and f"cached build started {cached['started']}" in html
    assert "Stages from the wheel cache in the cached build: build-standin-ext." in html
    assert "Smoke throughput against the bandwidth roofline: not run." in html

    loaded = load_in_chromium(out / "report.html", ARTIFACTS / "report.png")
    assert len(loaded["images"]) == 3 and all(i["complete"] and i["width"] > 0 for i in loaded["images"]), loaded
    assert loaded["errors"] == []
    assert "build report: sandbox" in loaded["text"] and "not run" in loaded["text"]
    assert png_size((ARTIFACTS / "report.png").read_bytes())[1] > 900


@pytest.mark.integration
def test_the_h200_smoke_runs_roofline_renders_in_headless_chromium(tmp_path: Path) -> None:
    assert report(tmp_path, h200_results(tmp_path)).code == 0
    loaded = load_in_chromium(tmp_path / "report" / "report.html", ARTIFACTS / "report-h200.png")
    assert len(loaded["images"]) == 2 and all(i["complete"] and i["width"] > 0 for i in loaded["images"]), loaded
    assert loaded["errors"] == []
    assert "qwen3-4b-bf16-decode 287.0 tok/s" in loaded["text"]
