"""`build verify IMAGE (--key PUB | --keyless --certificate-identity-regexp RE) [--require sbom,provenance,smoke]`:
what the image proves. With a key, offline against the public key; keyless (Sigstore: a CI's OIDC
identity, Fulcio and Rekor), through the cosign CLI."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from builder.cli.settings import Common, print_json
from builder.cli.stepsummary import append_step_summary
from builder.errors import EXIT_CHECK_FAILED, EXIT_OK, UsageError

KNOWN = ("sbom", "provenance", "smoke")
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"


@dataclass(frozen=True)
class Keyless:
    """Who must have signed: cosign's --certificate-* options."""

    identity_regexp: str
    issuer: str
    workflow_repository: str | None


@dataclass(frozen=True)
class VerifySettings:
    common: Common
    image: str
    key: Path | None
    keyless: Keyless | None
    require: tuple[str, ...]
    lock_dir: Path | None
    root_given: bool


def settings(args: argparse.Namespace) -> VerifySettings:
    require = tuple(part.strip() for part in (args.require or "").split(",") if part.strip())
    unknown = [part for part in require if part not in KNOWN]
    if unknown:
        raise UsageError(f"--require {','.join(unknown)}: unknown (known: {', '.join(KNOWN)})")
    if bool(args.key) == bool(args.keyless):
        raise UsageError("give --key PUB, or --keyless to check Sigstore keyless signatures with cosign")
    certificate = {
        "--certificate-identity-regexp": args.certificate_identity_regexp,
        "--certificate-oidc-issuer": args.certificate_oidc_issuer,
        "--certificate-github-workflow-repository": args.certificate_github_workflow_repository,
    }
    keyless = None
    if args.keyless:
        if not args.certificate_identity_regexp:
            raise UsageError(
                "--keyless needs --certificate-identity-regexp RE: whose signatures to accept",
                hint="e.g. '^https://github.com/ORG/REPO/' for a workflow of that repository",
            )
        keyless = Keyless(
            args.certificate_identity_regexp,
            args.certificate_oidc_issuer or GITHUB_ISSUER,
            args.certificate_github_workflow_repository,
        )
    else:
        given = [flag for flag, value in certificate.items() if value]
        if given:
            raise UsageError(f"{', '.join(given)} only apply with --keyless")
    return VerifySettings(Common.of(args), args.image, args.key, keyless, require, args.lock_dir, hasattr(args, "root"))


def run(settings: VerifySettings) -> int:
    from builder import pipeline
    from builder.summary import verify_summary

    if settings.keyless is not None:
        keyless = settings.keyless
        verified = pipeline.verify_keyless(
            settings.image, list(settings.require), keyless.identity_regexp, keyless.issuer,
            keyless.workflow_repository,
        )  # fmt: skip
    else:
        assert settings.key is not None
        root = settings.common.root if settings.root_given or settings.lock_dir else None
        verified = pipeline.verify_image(settings.image, settings.key, list(settings.require), root, settings.lock_dir)
    report = {
        "image": verified.image,
        "digest": verified.digest,
        "ok": verified.ok,
        "checks": [c.to_json() for c in verified.checks],
    }
    append_step_summary(verify_summary(report))
    if settings.common.json:
        print_json(report)
    else:
        for check in verified.checks:
            (sys.stdout if check.ok else sys.stderr).write(check.line() + "\n")
    return EXIT_OK if verified.ok else EXIT_CHECK_FAILED
