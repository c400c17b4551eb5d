"""`build keygen [--out PREFIX]`: an ECDSA P-256 key pair in cosign's formats."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from builder.errors import EXIT_OK


@dataclass(frozen=True)
class KeygenSettings:
    prefix: Path


def settings(args: argparse.Namespace) -> KeygenSettings:
    return KeygenSettings(args.out)


def run(settings: KeygenSettings) -> int:
    from builder.sign.keys import write_key_pair
    from builder.sign.password import key_password

    private, public = write_key_pair(settings.prefix, key_password(confirm=True))
    sys.stdout.write(f"wrote {private} (private, encrypted, mode 0600) and {public} (public)\n")
    return EXIT_OK
