"""cosign image signatures: the simple-signing payload, its ECDSA signature, and the `.sig` image that holds them."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from builder.errors import BuilderError
from builder.sign.encoding import b64decode, b64encode, check_digest, go_json
from builder.sign.keys import PrivateKey, PublicKey, ecdsa_sign, ecdsa_verify
from builder.sign.oci import (
    Attachment,
    Layer,
    LayerVerdict,
    Refusal,
    SignatureImage,
    append_layer,
    attachment_tag,
    build_image,
    parse_image,
    read_blob,
    readable_layers,
    verify_layers,
)

SIMPLE_SIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
SIGNATURE_TYPE = "cosign container image signature"
_WHAT = "the .sig manifest"


def simple_signing_payload(
    docker_reference: str, digest: str, optional: Mapping[str, str | int] | None = None
) -> bytes:
    """The payload cosign signs for `digest`, byte for byte; `docker_reference` is registry/repository."""
    check_digest(digest)
    if not docker_reference or any(char.isspace() or char == "@" for char in docker_reference):
        raise BuilderError(f"'{docker_reference}' is not a registry/repository name to sign for")
    critical = {
        "identity": {"docker-reference": docker_reference},
        "image": {"docker-manifest-digest": digest},
        "type": SIGNATURE_TYPE,
    }
    # cosign's optional map is nil (JSON null) without annotations; Go sorts the keys of a map it has.
    return go_json({"critical": critical, "optional": dict(sorted(optional.items())) if optional else None})


def signature_tag(digest: str) -> str:
    """The tag of `digest`'s signatures: sha256-<hex>.sig."""
    return attachment_tag(digest, "sig")


def signature_attachment(payload: bytes, signature: str) -> Attachment:
    """The layer cosign writes for `payload` and its base64 `signature` (also what `cosign attach signature` writes)."""
    return Attachment.of(SIMPLE_SIGNING_MEDIA_TYPE, payload, {SIGNATURE_ANNOTATION: signature})


def sign_payload(key: PrivateKey, payload: bytes) -> Attachment:
    """Sign `payload` (ECDSA P-256, SHA-256, DER, base64) and describe it as a .sig layer."""
    return signature_attachment(payload, b64encode(ecdsa_sign(key, payload)))


def sign_image(
    key: PrivateKey, docker_reference: str, digest: str, optional: Mapping[str, str | int] | None = None
) -> Attachment:
    """A signature over `digest` as `cosign sign --key` makes it."""
    return sign_payload(key, simple_signing_payload(docker_reference, digest, optional))


def signature_image(attachments: Sequence[Attachment]) -> SignatureImage:
    """A fresh .sig image holding `attachments` in order."""
    return build_image([attachment.layer for attachment in attachments])


def append_signature(existing: bytes | None, attachment: Attachment, key: PublicKey) -> SignatureImage | None:
    """`existing` .sig manifest (None: none yet) plus `attachment`; None if `key` already signed the same payload there."""
    if existing is not None:
        layers = readable_layers(parse_image(existing, what=_WHAT), what=_WHAT)
        if any(_duplicate(layer, attachment, key) for layer in layers):
            return None
    return append_layer(existing, attachment.layer, what=_WHAT)


def verify_signatures(manifest: bytes, blobs: Mapping[str, bytes], key: PublicKey, digest: str) -> list[LayerVerdict]:
    """One verdict per .sig layer: does it carry `key`'s valid signature over a payload naming `digest`?"""
    check_digest(digest)
    return verify_layers(manifest, lambda layer: _check(layer, blobs, key, digest), what=_WHAT)


def _check(layer: Layer, blobs: Mapping[str, bytes], key: PublicKey, digest: str) -> dict[str, Any]:
    """The signed payload of a layer that passes; Refusal with the first thing wrong otherwise."""
    if layer.media_type != SIMPLE_SIGNING_MEDIA_TYPE:
        raise Refusal(f"media type {layer.media_type} is not a cosign simple-signing payload")
    signature = _signature(layer)
    payload = read_blob(layer, blobs)
    if not ecdsa_verify(key, signature, payload):
        raise Refusal("bad signature: it does not verify with this key")
    claims = _claims(payload)
    signed = claims["critical"]["image"]["docker-manifest-digest"]
    if signed != digest:
        raise Refusal(f"signed for another digest: {signed}, not {digest}")
    return claims


def _signature(layer: Layer) -> bytes:
    encoded = layer.annotations.get(SIGNATURE_ANNOTATION)
    if encoded is None:
        raise Refusal(f"no {SIGNATURE_ANNOTATION} annotation")
    try:
        signature = b64decode(encoded)
        decode_dss_signature(signature)
    except ValueError:
        raise Refusal("garbled signature annotation: not a base64 DER ECDSA signature") from None
    return signature


def _claims(payload: bytes) -> dict[str, Any]:
    """The payload as JSON, if it has the shape cosign and containers/image require."""
    try:
        claims = json.loads(payload)
        critical = claims["critical"]
        signed = critical["image"]["docker-manifest-digest"]
        kind = critical["type"]
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise Refusal("garbled payload: not JSON") from None
    except (KeyError, TypeError):
        raise Refusal("garbled payload: no critical.image.docker-manifest-digest") from None
    if not isinstance(signed, str):
        raise Refusal("garbled payload: critical.image.docker-manifest-digest is not a string")
    if kind != SIGNATURE_TYPE:
        raise Refusal(f"payload type is {kind!r}, not {SIGNATURE_TYPE!r}")
    return dict(claims)


def _duplicate(layer: Layer, attachment: Attachment, key: PublicKey) -> bool:
    """cosign's DupeDetector: same payload, media type and other annotations, and a signature `key` verifies."""
    new = attachment.layer
    if (layer.digest, layer.media_type) != (new.digest, new.media_type):
        return False
    if any(layer.annotations.get(k) != v for k, v in new.annotations.items() if k != SIGNATURE_ANNOTATION):
        return False
    try:
        existing = b64decode(layer.annotations.get(SIGNATURE_ANNOTATION) or "")
    except ValueError:
        return False
    return bool(existing) and ecdsa_verify(key, existing, attachment.blob)
