"""`build lock STACK`: resolve and write each target's lock, or `--check` that they are current."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from builder import pipeline
from builder.cli.settings import Common, Locking, print_json
from builder.cli.stepsummary import append_step_summary
from builder.errors import EXIT_OK, Drift, display_path
from builder.progress import make_reporter
from builder.validate import load_catalogue


@dataclass(frozen=True)
class LockSettings:
    common: Common
    locking: Locking
    stack: str
    targets: tuple[str, ...]
    check: bool
    upgrade: bool


def settings(args: argparse.Namespace) -> LockSettings:
    common = Common.of(args)
    return LockSettings(common, Locking.of(args, common.root), args.stack, tuple(args.target), args.check, args.upgrade)


def run(settings: LockSettings) -> int:
    catalogue = load_catalogue(settings.common.root)
    targets = list(settings.targets)
    locking = settings.locking
    if settings.check:
        from builder.summary import lock_summary

        stack = catalogue.stack(settings.stack).model.name
        try:
            current = pipeline.check_locks(catalogue, settings.stack, targets, locking.lock_dir, locking.upstream)
        except Drift as drift:
            append_step_summary(lock_summary(stack, [], drift.changes))
            raise
        append_step_summary(lock_summary(stack, current, []))
        for target in current:
            sys.stdout.write(f"lock of {stack} on {target} is current\n")
        return EXIT_OK
    results = pipeline.lock(
        catalogue, settings.stack, targets, locking.lock_dir, locking.upstream, make_reporter(sys.stderr),
        upgrade=settings.upgrade,
    )  # fmt: skip
    if settings.common.json:
        print_json(
            [
                {
                    "target": r.target,
                    "directory": str(r.paths.directory),
                    "changed": r.changed,
                    "image_lock": r.image.model_dump(mode="json", by_alias=True),
                }
                for r in results
            ]
        )
        return EXIT_OK
    for result in results:
        sources = sum(1 for d in result.decisions if d.kind == "source")
        state = "written" if result.changed else "unchanged"
        sys.stdout.write(
            f"locked {result.image.stack} on {result.target}: {len(result.decisions)} heavy packages "
            f"({sources} source build{'' if sources == 1 else 's'}) -> {display_path(result.paths.directory)} ({state})\n"
        )
    return EXIT_OK
