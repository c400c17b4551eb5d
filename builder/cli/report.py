"""`build report STACK [--target T]... [--out DIR]`: report.html (self-contained, plots embedded) and
report.md (for CI's job summary) from what build, smoke and verify wrote, with the locks."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from builder import pipeline
from builder.cli.settings import Common, lock_dir, print_json
from builder.errors import EXIT_OK


@dataclass(frozen=True)
class ReportCommand:
    common: Common
    stack: str
    targets: tuple[str, ...]
    lock_dir: Path
    report: pipeline.ReportSettings


def settings(args: argparse.Namespace) -> ReportCommand:
    common = Common.of(args)
    results = args.results if args.results is not None else common.root / "out"
    out = args.out if args.out is not None else results / args.stack / "report"
    report = pipeline.ReportSettings(results_dir=results, out_dir=out, benchmark=args.benchmark)
    return ReportCommand(common, args.stack, tuple(args.target), lock_dir(args, common.root), report)


def run(settings: ReportCommand) -> int:
    from builder.validate import load_catalogue

    catalogue = load_catalogue(settings.common.root)
    written = pipeline.report(catalogue, settings.stack, list(settings.targets), settings.lock_dir, settings.report)
    if settings.common.json:
        print_json({name: str(path) for name, path in written.items()})
    else:
        sys.stdout.write(f"report {settings.stack}: {written['html']}, {written['markdown']}\n")
    return EXIT_OK
