"""Byte-level helpers the signing formats share: Go-compatible JSON, base64, digests and PEM."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re

from builder.errors import BuilderError

DIGEST = re.compile(r"sha256:[0-9a-f]{64}")

# Go's encoding/json escapes these inside strings (HTML safety, JavaScript line separators); Python does not.
_GO_ESCAPES = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))

_PEM = re.compile(rb"-----BEGIN ([^\r\n-]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL)


def go_json(value: object) -> bytes:
    """Compact JSON exactly as Go's json.Marshal writes it for the same key order (no whitespace, raw UTF-8)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    # '<', '>', '&' and U+2028/9 never occur outside strings in JSON, so replacing them in the whole text is safe.
    for char, escape in _GO_ESCAPES:
        text = text.replace(char, escape)
    return text.encode()


def b64encode(data: bytes) -> str:
    """Standard base64 with padding (Go's base64.StdEncoding)."""
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str) -> bytes:
    """Standard base64 as Go's StdEncoding reads it: padding required, CR and LF ignored; ValueError if garbled."""
    try:
        return base64.b64decode(text.replace("\r", "").replace("\n", ""), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"not base64: {exc}") from None


def b64decode_any(text: str) -> bytes:
    """Standard or URL-safe base64, as the DSSE spec allows for envelope fields; ValueError if garbled."""
    try:
        return b64decode(text)
    except ValueError:
        pass
    try:
        return base64.b64decode(text, altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"not base64: {exc}") from None


def sha256_digest(data: bytes) -> str:
    """The OCI digest of `data`: sha256:<64 hex>."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check_digest(digest: str) -> str:
    """`digest` itself if it is sha256:<64 lowercase hex>; BuilderError otherwise."""
    if not DIGEST.fullmatch(digest):
        raise BuilderError(f"'{digest}' is not a digest of the form sha256:<64 hex digits>")
    return digest


def pem_encode(label: str, der: bytes) -> bytes:
    """A PEM block as Go's pem.EncodeToMemory writes it: 64-character lines, trailing newline."""
    body = base64.b64encode(der)
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return b"".join(
        [f"-----BEGIN {label}-----\n".encode(), *(line + b"\n" for line in lines), f"-----END {label}-----\n".encode()]
    )


def pem_decode(data: bytes) -> tuple[str, bytes]:
    """The label and DER bytes of the first PEM block in `data`; ValueError if there is none or it is garbled."""
    match = _PEM.search(data)
    if match is None:
        raise ValueError("no PEM block found")
    body = b"".join(line.strip() for line in match.group(2).splitlines() if b":" not in line)  # headers have a colon
    try:
        der = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the PEM block is not valid base64") from None
    return match.group(1).decode("ascii", errors="replace"), der
