"""`build plan`: the decision table for one stack x target, from its lock when current."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from builder.catalogue import Catalogue
from builder.lock import World, checksums, decide, input_files, lock_paths, target_of


def plan_decisions(
    catalogue: Catalogue, stack_name: str, target_id: str, world: World
) -> tuple[list[dict[str, Any]], str]:
    """The heavy-package decisions and where they came from: the lock, or a resolution now."""
    stack_doc = catalogue.stack(stack_name)
    target = target_of(catalogue, stack_doc.model, target_id)
    paths = lock_paths(world.options.lock_dir, stack_doc.model.name, target_id)
    if paths.image_lock.exists():
        try:
            locked = json.loads(paths.image_lock.read_text())
            current = checksums(catalogue.root, input_files(catalogue, stack_doc.model, target_id))
            if locked["inputs"]["files"] == current:
                return list(locked["packages"]), f"lock {paths.image_lock}"
        except (ValueError, KeyError, TypeError):
            pass
    decisions = decide(catalogue, stack_doc, target, world)
    return [{k: v for k, v in asdict(d).items() if v is not None} for d in decisions], "resolved now (no current lock)"


def _chosen(decision: dict[str, Any]) -> str:
    if decision["kind"] == "source":
        return f"build {decision['version']} ({decision['ref']} = {decision['commit'][:12]})"
    if decision["kind"] == "default":
        return decision.get("version") or "(resolved with the environment)"
    return f"{decision['version']} ({decision['filename']})"


def render_plan(decisions: list[dict[str, Any]], origin: str) -> str:
    header = ["PACKAGE", "WANTED", "CHOSEN", "FROM", "WHY"]
    rows = [
        [
            d["package"] if d["package"] == d["recipe"] else f"{d['package']} -> {d['recipe']}",
            d.get("wanted") or "any",
            _chosen(d),
            d["source"],
            d["why"],
        ]
        for d in decisions
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    lines = [f"decisions from {origin}"]
    for row in [header, *rows]:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)) + "  " + row[4])
    return "\n".join(lines) + "\n"
