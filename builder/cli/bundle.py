"""`build bundle STACK --target T --out FILE.tar`, `build bundle verify FILE --key PUB` and
`build bundle import FILE --registry REPO [--wheels-index URL]`: air-gapped bundles."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from builder import pipeline
from builder.cli.settings import Common, Locking, print_json
from builder.cli.stack import REPOSITORY
from builder.errors import EXIT_CHECK_FAILED, EXIT_OK, UsageError


@dataclass(frozen=True)
class MakeSettings:
    common: Common
    locking: Locking
    stack: str
    target: str
    out: Path
    results: Path


@dataclass(frozen=True)
class VerifySettings:
    common: Common
    bundle: Path
    key: Path


@dataclass(frozen=True)
class ImportSettings:
    common: Common
    bundle: Path
    registry: str
    wheels_index: str | None
    key: Path | None


Settings = MakeSettings | VerifySettings | ImportSettings


def settings(args: argparse.Namespace) -> Settings:
    common = Common.of(args)
    if args.command == "bundle-verify":
        return VerifySettings(common, args.bundle, args.key)
    if args.command == "bundle-import":
        if not REPOSITORY.fullmatch(args.registry):
            raise UsageError(
                f"--registry '{args.registry}' is not an image repository", hint="e.g. registry.site:5000/team/maie"
            )
        if args.wheels_index and not args.wheels_index.startswith(("http://", "https://")):
            raise UsageError(f"--wheels-index '{args.wheels_index}' is not an http(s) URL of a PEP 503 index")
        return ImportSettings(common, args.bundle, args.registry, args.wheels_index, args.key)
    results = args.results if args.results is not None else common.root / "out"
    return MakeSettings(common, Locking.of(args, common.root), args.stack, args.target, args.out, results)


def run(settings: Settings) -> int:
    if isinstance(settings, VerifySettings):
        return _verify(settings)
    if isinstance(settings, ImportSettings):
        return _import(settings)
    return _make(settings)


def _make(settings: MakeSettings) -> int:
    from builder.bundle.make import BundleRequest
    from builder.progress import make_reporter
    from builder.validate import load_catalogue

    catalogue = load_catalogue(settings.common.root)
    catalogue.target(catalogue.stack(settings.stack).model, settings.target)
    request = BundleRequest(
        settings.stack, settings.target, settings.results, settings.locking.lock_dir,
        settings.locking.upstream.cache_dir, settings.out,
    )  # fmt: skip
    made = pipeline.bundle(request, settings.locking.upstream, make_reporter(sys.stderr))
    if settings.common.json:
        print_json(made)
        return EXIT_OK
    image = made["image"]
    sys.stdout.write(
        f"wrote {made['bundle']}: {made['bytes'] / 1e6:.1f} MB, {made['members']} files; image {image['digest']} "
        f"({image['bytes'] / 1e6:.1f} MB) with its signature and attestations, {len(made['wheels'])} wheel(s)"
        f"{', smoke.json' if made['smoke'] else ''}\n"
    )
    return EXIT_OK


def _verify(settings: VerifySettings) -> int:
    verdict = pipeline.bundle_verify(settings.bundle, settings.key)
    if settings.common.json:
        print_json(
            {
                "bundle": str(verdict.bundle),
                "digest": verdict.digest,
                "ok": verdict.ok,
                "checks": [check.to_json() for check in verdict.checks],
            }
        )
    else:
        for check in verdict.checks:
            (sys.stdout if check.ok else sys.stderr).write(check.line() + "\n")
    return EXIT_OK if verdict.ok else EXIT_CHECK_FAILED


def _import(settings: ImportSettings) -> int:
    from builder.progress import make_reporter

    done = pipeline.bundle_import(
        settings.bundle, settings.registry, settings.wheels_index, settings.key, make_reporter(sys.stderr)
    )
    if settings.common.json:
        print_json(done)
        return EXIT_OK
    sys.stdout.write(f"pushed {done['image']} (tag {done['tags'][0]}) with its signatures and attestations\n")
    if done["wheels-index"]:
        sys.stdout.write(f"uploaded {len(done['wheels'])} wheel(s) to {done['wheels-index']}\n")
    return EXIT_OK
