"""`build sbom IMAGE [--stack S --target T] --out DIR`: an image's SBOMs (SPDX 2.3 and CycloneDX
1.6) made by syft from the image itself, joined with the stack's lock when one is named."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from builder import pipeline
from builder.cli.settings import Common, lock_dir, print_json
from builder.errors import EXIT_OK, UsageError
from builder.progress import make_reporter


@dataclass(frozen=True)
class SbomSettings:
    common: Common
    image: str
    stack: str | None
    target: str | None
    lock_dir: Path
    out: Path
    source_date_epoch: int | None


def source_date_epoch(value: str | None) -> int | None:
    """SOURCE_DATE_EPOCH (reproducible-builds.org): whole seconds since 1970, or unset."""
    if value is None or value == "":
        return None
    if not value.isdigit():
        raise UsageError(f"SOURCE_DATE_EPOCH '{value}' is not a whole number of seconds since 1970")
    return int(value)


def settings(args: argparse.Namespace) -> SbomSettings:
    if (args.stack is None) != (args.target is None):
        raise UsageError("--stack and --target go together: name both to join with a lock, or neither")
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out}: is a file, not a directory")
    common = Common.of(args)
    return SbomSettings(
        common, args.image, args.stack, args.target, lock_dir(args, common.root), args.out,
        source_date_epoch(os.environ.get("SOURCE_DATE_EPOCH")),
    )  # fmt: skip


def run(settings: SbomSettings) -> int:
    result = pipeline.sbom(
        settings.common.root, settings.image, settings.stack, settings.target, settings.lock_dir, settings.out,
        source_date_epoch=settings.source_date_epoch, reporter=make_reporter(sys.stderr),
    )  # fmt: skip
    if settings.common.json:
        print_json(result.to_json())
        return EXIT_OK
    joined = f"; {result.locked} locked, all in the image" if settings.stack else " (no lock joined)"
    sys.stdout.write(
        f"SBOMs of {result.image} ({result.digest}): {result.spdx.path}, {result.cyclonedx.path}; "
        f"{result.packages} packages found{joined}\n"
    )
    return EXIT_OK
