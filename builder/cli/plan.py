"""`build plan STACK --target T`: how each heavy package is obtained, and the stages.

A plan made from a lock is a pure function of the catalogue, the lock and the options: its output
is kept as a memo (`builder.cli.memoized`). One resolved live, without a lock, is not.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from builder.cli import memoized
from builder.cli.settings import Common, Locking
from builder.errors import EXIT_OK
from builder.lock.paths import lock_paths

if TYPE_CHECKING:
    from builder.catalogue.documents import Catalogue


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
    lock = lock_paths(settings.locking.lock_dir, settings.stack, settings.target)
    words = [
        "plan", str(settings.locking.lock_dir), settings.stack, settings.target, repr(settings.build_memory_gb),
        repr(settings.common.json), json.dumps(settings.locking.upstream.index_overrides, sort_keys=True),
        json.dumps(settings.locking.upstream.image_mirrors, sort_keys=True),
        json.dumps(settings.locking.upstream.git_mirrors, sort_keys=True),
    ]  # fmt: skip
    files = [lock.image_lock, lock.pylock]
    sys.stdout.write(memoized.output("plan", settings.common.root, words, files, lambda: _plan(settings)))
    return EXIT_OK


def _plan(settings: PlanSettings) -> tuple[str, Catalogue | None]:
    """The output, and the catalogue when the plan came from a lock (only then is it kept)."""
    from builder import pipeline
    from builder.cli.views import decisions_text, stages_text
    from builder.validate import load_catalogue

    catalogue = load_catalogue(settings.common.root)
    view = pipeline.plan(
        catalogue, settings.stack, settings.target, settings.locking.lock_dir, settings.locking.upstream,
        settings.build_memory_gb,
    )  # fmt: skip
    if settings.common.json:
        output = (
            json.dumps(
                {
                    "stack": settings.stack,
                    "target": settings.target,
                    "from": view.origin_text(),
                    "packages": [decision.to_json() for decision in view.decisions],
                    "stages": view.plan.to_json() if view.plan else None,
                },
                indent=2,
            )
            + "\n"
        )
    else:
        stages = (
            stages_text(view.plan) if view.plan else "stages: lock the stack first ('build lock') to plan its stages\n"
        )
        output = decisions_text(view.decisions, view.origin_text()) + stages
    return output, (catalogue if view.origin == "lock" else None)
