"""`build plan STACK --target T`: how each heavy package is obtained, and the stages."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from builder import pipeline
from builder.cli.settings import Common, Locking, print_json
from builder.cli.views import decisions_text, stages_text
from builder.errors import EXIT_OK
from builder.validate import load_catalogue


@dataclass(frozen=True)
class PlanSettings:
    common: Common
    locking: Locking
    stack: str
    target: str
    build_memory_gb: float | None


def settings(args: argparse.Namespace) -> PlanSettings:
    common = Common.of(args)
    return PlanSettings(common, Locking.of(args, common.root), args.stack, args.target, args.build_memory)


def run(settings: PlanSettings) -> int:
    catalogue = load_catalogue(settings.common.root)
    view = pipeline.plan(
        catalogue, settings.stack, settings.target, settings.locking.lock_dir, settings.locking.upstream,
        settings.build_memory_gb,
    )  # fmt: skip
    if settings.common.json:
        print_json(
            {
                "stack": settings.stack,
                "target": settings.target,
                "from": view.origin_text(),
                "packages": [decision.to_json() for decision in view.decisions],
                "stages": view.plan.to_json() if view.plan else None,
            }
        )
        return EXIT_OK
    sys.stdout.write(decisions_text(view.decisions, view.origin_text()))
    sys.stdout.write(
        stages_text(view.plan) if view.plan else "stages: lock the stack first ('build lock') to plan its stages\n"
    )
    return EXIT_OK
