"""`build sign IMAGE --key KEY [--format simple|bundle] | --keyless`: sign the image's manifest digest."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from builder.cli.settings import print_json
from builder.errors import EXIT_OK, UsageError


@dataclass(frozen=True)
class SignSettings:
    image: str
    key: Path | None
    keyless: bool
    format: Literal["simple", "bundle"]
    json: bool


def settings(args: argparse.Namespace) -> SignSettings:
    if bool(args.key) == bool(args.keyless):
        raise UsageError("give --key KEY, or --keyless to sign with cosign and the CI's OIDC identity")
    return SignSettings(args.image, args.key, args.keyless, args.format, args.json)


def run(settings: SignSettings) -> int:
    from builder import pipeline

    if settings.keyless:
        done = pipeline.sign_keyless(settings.image)
    else:
        from builder.sign.password import key_password

        assert settings.key is not None
        done = pipeline.sign_image(settings.image, settings.key, key_password(), settings.format)
    if settings.json:
        print_json(done)
    else:
        state = "signed" if done.get("added", True) else "already signed by this key"
        sys.stdout.write(f"{state}: {done['image']} ({done['where']})\n")
    return EXIT_OK
