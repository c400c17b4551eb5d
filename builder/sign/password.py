"""The key password: COSIGN_PASSWORD (as cosign reads it; empty is allowed), else a prompt on the
terminal. It is never written, printed or logged."""

from __future__ import annotations

import getpass
import os
import sys

from builder.errors import UsageError


def key_password(*, confirm: bool = False) -> bytes:
    if "COSIGN_PASSWORD" in os.environ:
        return os.environ["COSIGN_PASSWORD"].encode()
    if not sys.stdin.isatty():
        raise UsageError("the key's password: set COSIGN_PASSWORD (it may be empty) or run on a terminal")
    first = getpass.getpass("Enter password for private key: ")
    if confirm and getpass.getpass("Enter password for private key again: ") != first:
        raise UsageError("the passwords do not match")
    return first.encode()
