"""`build render STACK --target T --out DIR`: write the rendered files of a current lock."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from builder import pipeline
from builder.cli.settings import Common, Locking
from builder.errors import EXIT_OK, display_path
from builder.validate import load_catalogue


@dataclass(frozen=True)
class RenderSettings:
    common: Common
    locking: Locking
    stack: str
    target: str
    build_memory_gb: float | None
    out: Path


def settings(args: argparse.Namespace) -> RenderSettings:
    common = Common.of(args)
    return RenderSettings(common, Locking.of(args, common.root), args.stack, args.target, args.build_memory, args.out)


def run(settings: RenderSettings) -> int:
    catalogue = load_catalogue(settings.common.root)
    rendered = pipeline.render(
        catalogue, settings.stack, settings.target, settings.locking.lock_dir, settings.locking.upstream,
        settings.build_memory_gb, settings.out,
    )  # fmt: skip
    plan = rendered.plan
    sys.stdout.write(
        f"rendered {plan.stack} for {plan.target} into {display_path(settings.out)}: "
        f"{len(plan.builders)} builder stage(s), {len(plan.runtime)} locked wheels, {rendered.files} files\n"
    )
    return EXIT_OK
