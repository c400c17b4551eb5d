"""`build stack STACK`: build, tag and push a stack's images (the main job)."""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.build.options import StackSettings
from builder.cli.settings import Common, Locking, print_json
from builder.cli.stepsummary import append_step_summary
from builder.errors import EXIT_OK, UsageError
from builder.progress import make_reporter

# host[:port]/path as image references spell it (lower case), optionally http:// for a plain-HTTP registry
REPOSITORY = re.compile(r"(http://)?[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)+")


@dataclass(frozen=True)
class StackCommand:
    common: Common
    locking: Locking
    stack: str
    targets: tuple[str, ...]
    build: StackSettings
    sign_key: Path | None

    def words(self) -> list[str]:
        """What decides the images besides the files they are made from (see builder.build.shortcut)."""
        upstream = self.locking.upstream
        return [
            "stack", self.stack, *self.targets, "|", self.build.engine, str(self.build.builder), str(self.build.registry),
            str(self.build.push), str(self.build.out_dir.resolve()), str(self.locking.lock_dir.resolve()),
            str(self.build.publish_wheels), repr(self.build.build_memory_gb), repr(sorted(upstream.image_mirrors.items())),
            repr(sorted(upstream.git_mirrors.items())), repr(sorted(upstream.index_overrides.items())),
            str(upstream.offline),
        ]  # fmt: skip


def settings(args: argparse.Namespace) -> StackCommand:
    if args.push and not args.registry:
        raise UsageError("--push needs --registry REPO to push to")
    if args.registry and not REPOSITORY.fullmatch(args.registry):
        raise UsageError(
            f"--registry '{args.registry}' is not an image repository", hint="e.g. registry.lan:5000/team/maie"
        )
    if args.publish_wheels and not args.publish_wheels.startswith(("http://", "https://")):
        raise UsageError(f"--publish-wheels '{args.publish_wheels}' is not an http(s) URL of a PEP 503 index")
    if args.builder is not None and args.engine == "buildah":
        raise UsageError(f"--builder {args.builder} names a buildx builder: it needs --engine docker (or auto)")
    common = Common.of(args)
    build = StackSettings(
        engine=args.engine,
        out_dir=args.out if args.out is not None else common.root / "out",
        registry=args.registry,
        push=args.push,
        update_lock=args.update_lock,
        publish_wheels=args.publish_wheels,
        build_memory_gb=args.build_memory,
        force=args.force,
        builder=args.builder,
    )
    return StackCommand(common, Locking.of(args, common.root), args.stack, tuple(args.target), build, args.sign_key)


def run(settings: StackCommand) -> int:
    signer = None
    if settings.sign_key is not None:  # a wrong password stops here, before anything is built
        from builder.sign.keys import read_private_key
        from builder.sign.password import key_password

        signer = read_private_key(settings.sign_key, key_password())
    reporter = make_reporter(sys.stderr)
    found = None if settings.build.force else _unchanged(settings, signer, reporter.step)
    if found is None:
        found = _build(settings, signer, reporter)
    results, skipped = found
    _job_summary(results, skipped)
    if settings.common.json:
        print_json({"results": results, "skipped": skipped})
        return EXIT_OK
    _print(results, skipped)
    return EXIT_OK


def _unchanged(
    settings: StackCommand, signer: Any, step: Any
) -> tuple[list[dict[str, Any]], list[dict[str, str]]] | None:
    from builder.build.shortcut import fast_results

    hint = None
    if signer is not None:
        from builder.sign.keys import public_key_hint

        hint = public_key_hint(signer.public_key())
    insecure = (settings.build.registry or "").startswith("http://")
    return fast_results(settings.common.root, settings.words(), insecure=insecure, key_hint=hint, progress=step)


def _build(settings: StackCommand, signer: Any, reporter: Any) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    from builder import pipeline
    from builder.build.shortcut import record
    from builder.validate import load_catalogue

    catalogue = load_catalogue(settings.common.root)
    built = pipeline.build_stack(
        catalogue, settings.stack, list(settings.targets), settings.locking.lock_dir, settings.locking.upstream,
        settings.build, reporter, signer,
    )  # fmt: skip
    record(settings.common.root, settings.words(), built.results, built.skipped, built.inputs)
    return built.results, built.skipped


def _print(results: list[dict[str, Any]], skipped: list[dict[str, str]]) -> None:
    for result in results:
        if result.get("fast-path"):
            sys.stdout.write(
                f"unchanged {result['stack']} on {result['target']}: {result['image']['reference']} "
                f"({result['image']['stored']}; built {result.get('built')}; no engine call, no push)\n"
            )
        else:
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
    for skip in skipped:
        sys.stdout.write(f"skipped {skip['target']}: {skip['reason']}\n")


def _job_summary(results: list[dict[str, Any]], skipped: list[dict[str, str]]) -> None:
    from builder.summary import build_summary, skipped_summary

    for result in results:
        append_step_summary(build_summary(result))
    for skip in skipped:
        append_step_summary(skipped_summary(skip))
