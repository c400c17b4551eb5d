"""Markdown for a CI job's summary page (GitHub Actions' `$GITHUB_STEP_SUMMARY`): one section per
command, rendered from what the command already reports, so the page and the JSON never disagree.

- `build_summary`: one `out/<stack>/<target>/result.json` of `build stack` (image by digest, sizes,
  stage times, wheel cache hits, SBOMs, signature and attestations);
- `verify_summary`: `build verify --json` ({image, digest, ok, checks: [{name, ok, detail}]});
- `smoke_summary`: a smoke report, `smoke.json` (checks as {name, status pass|fail|not run, value,
  unit, threshold, how, path, reason, details}, a `summary` and an `exit_code`);
- `lock_summary`: `build lock --check` (the current targets, or every change found).

Pure functions of their input; `builder.cli.stepsummary` appends their text to the file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

PASS, FAIL = "✅", "❌"
SMOKE_MARKS = {"pass": PASS, "fail": FAIL, "not run": "⚪"}


def cell(value: object) -> str:
    """Text that stays inside one table cell: no line breaks, no column separators."""
    return " ".join(str(value).split()).replace("|", "\\|")


def code(value: object) -> str:
    """Inline code that a backtick inside the value cannot end early."""
    text = cell(value)
    fence = "``" if "`" in text else "`"
    return f"{fence} {text} {fence}" if fence == "``" else f"`{text}`"


def table(header: Sequence[str], rows: Iterable[Sequence[str]], align: str = "") -> list[str]:
    """A markdown table; `align` has one letter per column, `r` for a right-aligned (numeric) one."""
    marks = ["---:" if (align[i:i + 1] == "r") else "---" for i in range(len(header))]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(marks) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def byte_count(value: int) -> str:
    """Exact bytes with thousands separators, and megabytes (10^6) to read at a glance."""
    return f"{value:,} B ({value / 1e6:.1f} MB)"


def seconds(value: float) -> str:
    return f"{value:.2f} s"


def _section(lines: list[str]) -> str:
    return "\n".join(lines).rstrip("\n") + "\n"


# ---------------------------------------------------------------- build stack


def build_summary(result: Mapping[str, Any]) -> str:
    """One built stack x target, from its result.json."""
    image = result["image"]
    sizes = result["sizes"]
    lines = [f"### {cell(result['stack'])} on {cell(result['target'])}", ""]
    facts = [
        ("image", code(image["reference"])),
        ("tags", ", ".join(code(tag) for tag in image.get("tags", []))),
        ("stored", cell(image.get("stored", ""))),
        ("platform", cell(result.get("platform", ""))),
        ("engine", cell(" ".join(str(v) for v in (result.get("engine") or {}).values()))),
        ("lock", code(result.get("lock-checksum", ""))),
        ("image size", f"{byte_count(sizes['layers_bytes'])} in {sizes['layers']} layers (compressed)"),
        ("runtime base", byte_count(sizes["base_bytes"])),
        ("added above the base", byte_count(sizes["added_bytes"])),
        ("build time", f"{seconds(result['seconds'])} ({cell(result.get('started', ''))} to {cell(result.get('finished', ''))})"),
    ]  # fmt: skip
    lines += table(["", ""], [[name, value] for name, value in facts])
    lines += ["", *_stages(result.get("stages") or [])]
    wheels = result.get("wheel_cache") or {}
    if wheels:
        lines += ["", *_wheel_cache(wheels)]
    lines += ["", *_proof(result)]
    return _section(lines)


def _stages(stages: Sequence[Mapping[str, Any]]) -> list[str]:
    rows = []
    for stage in stages:
        if stage.get("cached"):
            source = "wheel cache hit"
        else:
            steps = int(stage.get("engine_cached_steps") or 0)
            source = "built" + (f" ({steps} engine cache hit{'s' if steps != 1 else ''})" if steps else "")
        rows.append([code(stage["name"]), seconds(stage["seconds"]), source])
    return table(["stage", "time", "from"], rows, "lrl")


def _wheel_cache(wheels: Mapping[str, Mapping[str, Any]]) -> list[str]:
    rows = []
    for recipe, entry in sorted(wheels.items()):
        state = "hit" if entry.get("cache_hit") else "built" + (", published" if entry.get("published") else "")
        rows.append(
            [cell(recipe), state, code(str(entry.get("key", ""))[:19]), cell(", ".join(entry.get("wheels", [])))]
        )
    hits = sum(1 for entry in wheels.values() if entry.get("cache_hit"))
    return [f"Wheel cache: {hits} of {len(wheels)} source build(s) from the cache.", "", *table(["recipe", "result", "key", "wheels"], rows)]  # fmt: skip


def _proof(result: Mapping[str, Any]) -> list[str]:
    lines = []
    sbom = result.get("sbom")
    if sbom:
        missing = sbom.get("missing") or []
        lines.append(
            f"- SBOMs: {sbom['packages']} packages, {sbom['locked']} locked, "
            + (f"{len(missing)} locked missing from the image" if missing else "every locked package in the image")
            + f" ({code(sbom['paths']['spdx'])}, {code(sbom['paths']['cyclonedx'])})"
        )
    provenance = result.get("provenance")
    if provenance:
        lines.append(f"- provenance: {code(provenance['path'])}")
    signature = result.get("signature")
    lines.append(
        f"- signature: {code(signature['where'])}" if signature else "- signature: not signed by `build stack`"
    )
    attestations = result.get("attestations") or []
    if attestations:
        lines.append("- attestations: " + ", ".join(code(a["type"]) for a in attestations))
    return lines


def skipped_summary(skipped: Mapping[str, str]) -> str:
    return _section([f"### {cell(skipped['target'])}: skipped", "", cell(skipped["reason"])])


# ---------------------------------------------------------------- verify


def verify_summary(verified: Mapping[str, Any]) -> str:
    """`build verify --json`: every check with its verdict."""
    ok = bool(verified["ok"])
    lines = [f"### verify {code(verified['image'])}: {'passed ' + PASS if ok else 'failed ' + FAIL}", ""]
    rows = [
        [cell(check["name"]), PASS + " ok" if check["ok"] else FAIL + " failed", cell(check["detail"])]
        for check in verified["checks"]
    ]
    lines += table(["check", "result", "detail"], rows)
    return _section(lines)


# ---------------------------------------------------------------- smoke


def smoke_summary(report: Mapping[str, Any]) -> str:
    """A smoke report (smoke.json): the device and power mode seen, each check's value against its
    threshold, and the verdict."""
    summary = report.get("summary") or {}
    result = str(summary.get("result", "unknown"))
    mark = PASS if result == "pass" else FAIL
    where = " on ".join(cell(part) for part in (report.get("stack"), report.get("target")) if part)
    lines = [f"### smoke{': ' + where if where else ''}: {cell(result)} {mark}", ""]
    device = report.get("device")
    mode = report.get("power_mode") or {}
    seen = "no GPU"
    if isinstance(device, Mapping):
        capability = f" (compute capability {cell(device['capability'])})" if device.get("capability") else ""
        seen = cell(device.get("name", "a GPU")) + capability
    lines.append(
        f"Device: {seen}; power mode: {cell(mode.get('active') or 'unknown')}"
        + (f" (required {cell(mode['required'])})" if mode.get("required") else "")
        + (f"; image {code(report['image'])}" if report.get("image") else "")
    )
    lines.append("")
    rows = []
    for check in report.get("checks") or []:
        status = str(check.get("status", ""))
        value = check.get("value")
        shown = "" if value is None else str(value)
        measured = f"{shown} {check.get('unit') or ''}".strip()
        note = check.get("reason") or check.get("how") or ""
        rows.append(
            [
                cell(check.get("name", "")),
                f"{SMOKE_MARKS.get(status, '')} {cell(status)}".strip(),
                cell(measured),
                cell(check.get("threshold") or ""),
                cell(check.get("path") or ""),
                cell(note),
            ]
        )
    lines += table(["check", "status", "value", "threshold", "path", "how / why"], rows, "llrrll")
    if summary:
        lines += [
            "",
            f"{summary.get('passed', 0)} passed, {summary.get('failed', 0)} failed, "
            f"{summary.get('not_run', 0)} not run (exit {report.get('exit_code', '?')})",
        ]
    return _section(lines)


# ---------------------------------------------------------------- lock --check


def lock_summary(stack: str, current: Sequence[str], changes: Sequence[str]) -> str:
    """`build lock --check`: the targets whose locks are current, or every change found."""
    if changes:
        lines = [f"### lock of {cell(stack)}: out of date {FAIL}", ""]
        lines += [f"- {cell(change)}" for change in changes]
        lines += ["", f"Run `build lock {cell(stack)}` and commit the lock."]
    else:
        lines = [f"### lock of {cell(stack)}: current {PASS}", ""]
        lines += [f"- {cell(target)}" for target in current]
    return _section(lines)
