"""`build stack STACK`: build, tag and push a stack's images (the main job)."""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from builder import pipeline
from builder.cli.settings import Common, Locking, print_json
from builder.cli.stepsummary import append_step_summary
from builder.errors import EXIT_OK, UsageError
from builder.progress import make_reporter
from builder.validate import load_catalogue

# host[:port]/path as image references spell it (lower case), optionally http:// for a plain-HTTP registry
REPOSITORY = re.compile(r"(http://)?[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)+")


@dataclass(frozen=True)
class StackCommand:
    common: Common
    locking: Locking
    stack: str
    targets: tuple[str, ...]
    build: pipeline.StackSettings
    sign_key: Path | None


def settings(args: argparse.Namespace) -> StackCommand:
    if args.push and not args.registry:
        raise UsageError("--push needs --registry REPO to push to")
    if args.registry and not REPOSITORY.fullmatch(args.registry):
        raise UsageError(
            f"--registry '{args.registry}' is not an image repository", hint="e.g. registry.lan:5000/team/maie"
        )
    if args.publish_wheels and not args.publish_wheels.startswith(("http://", "https://")):
        raise UsageError(f"--publish-wheels '{args.publish_wheels}' is not an http(s) URL of a PEP 503 index")
    common = Common.of(args)
    build = pipeline.StackSettings(
        engine=args.engine,
        out_dir=args.out if args.out is not None else common.root / "out",
        registry=args.registry,
        push=args.push,
        update_lock=args.update_lock,
        publish_wheels=args.publish_wheels,
        build_memory_gb=args.build_memory,
    )
    return StackCommand(common, Locking.of(args, common.root), args.stack, tuple(args.target), build, args.sign_key)


def run(settings: StackCommand) -> int:
    catalogue = load_catalogue(settings.common.root)
    signer = None
    if settings.sign_key is not None:  # a wrong password stops here, before anything is built
        from builder.sign.keys import read_private_key
        from builder.sign.password import key_password

        signer = read_private_key(settings.sign_key, key_password())
    built = pipeline.build_stack(
        catalogue, settings.stack, list(settings.targets), settings.locking.lock_dir, settings.locking.upstream,
        settings.build, make_reporter(sys.stderr), signer,
    )  # fmt: skip
    _job_summary(built)
    if settings.common.json:
        print_json({"results": built.results, "skipped": built.skipped})
        return EXIT_OK
    for result in built.results:
        wheels = ", ".join(
            f"{name} {'cached' if w['cache_hit'] else 'built'}" for name, w in result["wheel_cache"].items()
        )
        sys.stdout.write(
            f"built {result['stack']} on {result['target']}: {result['image']['reference']} "
            f"({result['image']['stored']}; {result['sizes']['added_bytes'] / 1e6:.1f} MB above the base; "
            f"{result['seconds']:.0f} s{'; ' + wheels if wheels else ''})\n"
        )
        sbom = result["sbom"]
        sys.stdout.write(
            f"  SBOMs: {sbom['paths']['spdx']}, {sbom['paths']['cyclonedx']} "
            f"({sbom['packages']} packages; {sbom['locked']} locked, all in the image)\n"
        )
        if "signature" in result:
            kinds = ", ".join(attestation["type"] for attestation in result["attestations"])
            sys.stdout.write(f"  signed ({result['signature']['where']}); attested: {kinds}\n")
    for skip in built.skipped:
        sys.stdout.write(f"skipped {skip['target']}: {skip['reason']}\n")
    return EXIT_OK


def _job_summary(built: pipeline.StackBuild) -> None:
    from builder.summary import build_summary, skipped_summary

    for result in built.results:
        append_step_summary(build_summary(result))
    for skip in built.skipped:
        append_step_summary(skipped_summary(skip))
