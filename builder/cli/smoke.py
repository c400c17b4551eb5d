"""`build smoke STACK --target T (--image IMAGE | --here)`: the stack's smoke checks on this machine's
GPU, written to smoke.json; exit 0 all passed, 1 one failed, 3 no GPU or engine."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder import pipeline
from builder.cli.settings import Common, lock_dir, pairs, print_json
from builder.cli.stepsummary import append_step_summary
from builder.errors import EXIT_CHECK_FAILED, EXIT_OK, EXIT_UNAVAILABLE, UsageError
from builder.progress import make_reporter


@dataclass(frozen=True)
class SmokeCommand:
    common: Common
    stack: str
    target: str
    lock_dir: Path
    run: pipeline.SmokeSettings
    sign_key: Path | None


def settings(args: argparse.Namespace) -> SmokeCommand:
    if args.sign_key and args.here:
        raise UsageError("--sign-key attaches the result to an image: it needs --image, not --here")
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out}: is a file, not a directory")
    common = Common.of(args)
    models = {name: Path(directory) for name, directory in pairs(args.model, "--model").items()}
    run = pipeline.SmokeSettings(args.image, models, args.power_mode, args.out, args.engine)
    return SmokeCommand(common, args.stack, args.target, lock_dir(args, common.root), run, args.sign_key)


def run(settings: SmokeCommand) -> int:
    from builder.validate import load_catalogue

    catalogue = load_catalogue(settings.common.root)
    signer = None
    if settings.sign_key is not None:  # a wrong password stops here, before the run
        from builder.sign.keys import read_private_key
        from builder.sign.password import key_password

        signer = read_private_key(settings.sign_key, key_password())
    done = pipeline.smoke(
        catalogue, settings.stack, settings.target, settings.lock_dir, settings.run, make_reporter(sys.stderr), signer
    )
    from builder.summary import smoke_summary

    append_step_summary(smoke_summary(done.report))
    if settings.common.json:
        print_json({"path": str(done.path), "attestation": done.attestation, **done.report})
    summary = done.report.get("summary", {})
    failed = [c for c in done.report.get("checks", []) if c.get("status") == "fail"]
    if not settings.common.json:
        sys.stdout.write(
            f"smoke {settings.stack} on {settings.target}: {summary.get('result')}: {summary.get('passed')} passed, "
            f"{summary.get('failed')} failed, {summary.get('not_run')} not run ({done.path})\n"
        )
        if done.attestation is not None:
            sys.stdout.write(f"  attested ({done.attestation['where']})\n")
    for check in failed:
        sys.stderr.write(f"error: smoke check {check['name']} failed: {check_text(check)}\n")
    if failed or done.code == 1:
        return EXIT_CHECK_FAILED
    if done.code == 3:
        sys.stderr.write(f"error: no GPU: {no_gpu_reason(done.report)} (versions and imports were still checked)\n")
        return EXIT_UNAVAILABLE
    return EXIT_OK


def check_text(check: dict[str, Any]) -> str:
    """`21.3 tok/s, needs >= 30` or the runner's reason, with the path measured."""
    value, unit, threshold = check.get("value"), check.get("unit") or "", check.get("threshold")
    shown = f"{value:.4g}" if isinstance(value, float) else str(value)
    text = str(check.get("reason") or f"{shown} {unit}".strip() + (f", needs {threshold}" if threshold else ""))
    return text + (f" (path {check['path']})" if check.get("path") else "")


def no_gpu_reason(report: dict[str, Any]) -> str:
    reasons = [str(c.get("reason", "")) for c in report.get("checks", []) if c.get("status") == "not run"]
    return next((r.removeprefix("no GPU: ") for r in reasons if r.startswith("no GPU")), "the runner found none")
