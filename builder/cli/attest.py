"""`build attest IMAGE --key KEY --type T --predicate FILE`: an in-toto attestation, as cosign attest makes."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from builder.cli.settings import print_json
from builder.errors import EXIT_OK


@dataclass(frozen=True)
class AttestSettings:
    image: str
    key: Path
    type: str
    predicate: Path
    json: bool


def settings(args: argparse.Namespace) -> AttestSettings:
    return AttestSettings(args.image, args.key, args.type, args.predicate, args.json)


def run(settings: AttestSettings) -> int:
    from builder import pipeline
    from builder.sign.password import key_password

    done = pipeline.attest_image(settings.image, settings.key, key_password(), settings.type, settings.predicate)
    if settings.json:
        print_json(done)
    else:
        sys.stdout.write(f"attested {done['predicateType']} for {done['image']} ({done['where']})\n")
    return EXIT_OK
