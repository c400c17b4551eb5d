"""`build verify IMAGE --key PUB [--require sbom,provenance,smoke]`: what the image proves, offline."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from builder.cli.settings import Common, print_json
from builder.errors import EXIT_CHECK_FAILED, EXIT_OK, UsageError

KNOWN = ("sbom", "provenance", "smoke")


@dataclass(frozen=True)
class VerifySettings:
    common: Common
    image: str
    key: Path
    require: tuple[str, ...]
    lock_dir: Path | None
    root_given: bool


def settings(args: argparse.Namespace) -> VerifySettings:
    require = tuple(part.strip() for part in (args.require or "").split(",") if part.strip())
    unknown = [part for part in require if part not in KNOWN]
    if unknown:
        raise UsageError(f"--require {','.join(unknown)}: unknown (known: {', '.join(KNOWN)})")
    return VerifySettings(Common.of(args), args.image, args.key, require, args.lock_dir, hasattr(args, "root"))


def run(settings: VerifySettings) -> int:
    from builder import pipeline

    root = settings.common.root if settings.root_given or settings.lock_dir else None
    verified = pipeline.verify_image(settings.image, settings.key, list(settings.require), root, settings.lock_dir)
    if settings.common.json:
        print_json(
            {
                "image": verified.image,
                "digest": verified.digest,
                "ok": verified.ok,
                "checks": [c.to_json() for c in verified.checks],
            }
        )
    else:
        for check in verified.checks:
            (sys.stdout if check.ok else sys.stderr).write(check.line() + "\n")
    return EXIT_OK if verified.ok else EXIT_CHECK_FAILED
