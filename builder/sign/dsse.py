"""in-toto attestations in DSSE envelopes, and the `.att` image cosign keeps them in."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from builder.errors import CheckFailed, UsageError
from builder.sign.encoding import b64decode_any, b64encode, check_digest, go_json
from builder.sign.keys import PrivateKey, PublicKey, ecdsa_sign, ecdsa_verify
from builder.sign.oci import (
    Attachment,
    Layer,
    LayerVerdict,
    Refusal,
    SignatureImage,
    attachment_tag,
    build_image,
    parse_image,
    read_blob,
    readable_layers,
    verify_layers,
)

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
DSSE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
PREDICATE_TYPE_ANNOTATION = "predicateType"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"  # present and empty on attestation layers
STATEMENT_V01 = "https://in-toto.io/Statement/v0.1"  # what `cosign attest` writes
STATEMENT_V1 = "https://in-toto.io/Statement/v1"
STATEMENT_TYPES = (STATEMENT_V01, STATEMENT_V1)
SPDX = "https://spdx.dev/Document"
CYCLONEDX = "https://cyclonedx.org/bom"
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
# cosign's --type short names (cmd/cosign/cli/options/predicate.go PredicateTypeMap).
PREDICATE_TYPES: Mapping[str, str] = {
    "spdx": SPDX,
    "spdxjson": SPDX,
    "cyclonedx": CYCLONEDX,
    "slsaprovenance": "https://slsa.dev/provenance/v0.2",
    "slsaprovenance02": "https://slsa.dev/provenance/v0.2",
    "slsaprovenance1": SLSA_PROVENANCE_V1,
    "link": "https://in-toto.io/Link/v1",
    "vuln": "https://cosign.sigstore.dev/attestation/vuln/v1",
    "openvex": "https://openvex.dev/ns",
    "custom": "https://cosign.sigstore.dev/attestation/v1",
}
_WHAT = "the .att manifest"


def predicate_type(name_or_uri: str) -> str:
    """The predicate type URI for a cosign `--type` short name, or the URI itself; UsageError otherwise."""
    if name_or_uri in PREDICATE_TYPES:
        return PREDICATE_TYPES[name_or_uri]
    parts = urlsplit(name_or_uri)
    if parts.scheme and (parts.netloc or parts.path) and not any(char.isspace() for char in name_or_uri):
        return name_or_uri
    raise UsageError(
        f"--type '{name_or_uri}' is neither a predicate type URI nor one of {', '.join(sorted(PREDICATE_TYPES))}"
    )


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what an envelope's signatures sign."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def statement(
    subject_name: str | None,
    digest: str,
    predicate_type: str,
    predicate: object,
    *,
    statement_type: str = STATEMENT_V01,
) -> bytes:
    """An in-toto statement about one image digest, in the field order cosign's protojson uses."""
    check_digest(digest)
    if statement_type not in STATEMENT_TYPES:
        raise ValueError(f"not an in-toto statement type: {statement_type}")
    subject: dict[str, object] = {} if subject_name is None else {"name": subject_name}
    subject["digest"] = {"sha256": digest.removeprefix("sha256:")}
    return go_json(
        {"_type": statement_type, "subject": [subject], "predicateType": predicate_type, "predicate": predicate}
    )


def sign_envelope(key: PrivateKey, payload: bytes, payload_type: str = IN_TOTO_PAYLOAD_TYPE) -> bytes:
    """A DSSE envelope over `payload` with one ECDSA signature and no keyid, as cosign writes it."""
    signature = ecdsa_sign(key, pae(payload_type, payload))
    return go_json(
        {"payload": b64encode(payload), "payloadType": payload_type, "signatures": [{"sig": b64encode(signature)}]}
    )


def open_envelope(envelope: bytes, key: PublicKey, payload_type: str = IN_TOTO_PAYLOAD_TYPE) -> bytes:
    """The payload of a DSSE envelope that `key` signed; CheckFailed with a one-line reason otherwise."""
    try:
        return _open(envelope, key, payload_type)
    except Refusal as refusal:
        raise CheckFailed(str(refusal)) from None


def read_statement(payload: bytes) -> dict[str, Any]:
    """An in-toto statement (v0.1 or v1) parsed and shape-checked; CheckFailed with a one-line reason otherwise."""
    try:
        return _statement(payload)
    except Refusal as refusal:
        raise CheckFailed(str(refusal)) from None


def check_subject(claims: Mapping[str, Any], digest: str) -> None:
    """CheckFailed unless some subject of a statement read by read_statement has `digest`."""
    try:
        _subject(claims, check_digest(digest))
    except Refusal as refusal:
        raise CheckFailed(str(refusal)) from None


def attestation_tag(digest: str) -> str:
    """The tag of `digest`'s attestations: sha256-<hex>.att."""
    return attachment_tag(digest, "att")


def attestation_attachment(envelope: bytes, predicate_type: str) -> Attachment:
    """The .att layer cosign writes for a DSSE envelope: the empty signature annotation is required by its reader."""
    return Attachment.of(
        DSSE_MEDIA_TYPE, envelope, {SIGNATURE_ANNOTATION: "", PREDICATE_TYPE_ANNOTATION: predicate_type}
    )


def attest(
    key: PrivateKey,
    subject_name: str | None,
    digest: str,
    predicate_type: str,
    predicate: object,
    *,
    statement_type: str = STATEMENT_V01,
) -> Attachment:
    """An attestation about `digest` as `cosign attest --key` makes it."""
    payload = statement(subject_name, digest, predicate_type, predicate, statement_type=statement_type)
    return attestation_attachment(sign_envelope(key, payload), predicate_type)


def attestation_image(attachments: Sequence[Attachment]) -> SignatureImage:
    """A fresh .att image holding `attachments` in order."""
    return build_image([attachment.layer for attachment in attachments])


def append_attestation(existing: bytes | None, attachment: Attachment, *, replace: bool = False) -> SignatureImage:
    """`existing` .att manifest (None: none yet) plus `attachment`; `replace` drops layers of the same predicate type."""
    if existing is None:
        return build_image([attachment.layer])
    parsed = parse_image(existing, what=_WHAT)
    wanted = attachment.layer.annotations.get(PREDICATE_TYPE_ANNOTATION)
    kept = [
        layer
        for layer in readable_layers(parsed, what=_WHAT)
        if layer.digest != attachment.layer.digest
        and not (replace and layer.annotations.get(PREDICATE_TYPE_ANNOTATION) == wanted)
    ]
    return build_image(
        [*kept, attachment.layer],
        media_type=parsed.media_type,
        config_media_type=parsed.config_media_type,
        annotations=parsed.annotations,
    )


def verify_attestations(manifest: bytes, blobs: Mapping[str, bytes], key: PublicKey, digest: str) -> list[LayerVerdict]:
    """One verdict per .att layer: a DSSE envelope `key` signed, whose statement has `digest` as a subject.

    A passing verdict's claims are the statement; filter on its predicateType for the attestation wanted.
    """
    check_digest(digest)
    return verify_layers(manifest, lambda layer: _check(layer, blobs, key, digest), what=_WHAT)


def _check(layer: Layer, blobs: Mapping[str, bytes], key: PublicKey, digest: str) -> dict[str, Any]:
    if layer.media_type != DSSE_MEDIA_TYPE:
        raise Refusal(f"media type {layer.media_type} is not a DSSE envelope")
    if SIGNATURE_ANNOTATION not in layer.annotations:
        raise Refusal(f"no {SIGNATURE_ANNOTATION} annotation (cosign cannot read the layer)")
    claims = _statement(_open(read_blob(layer, blobs), key, IN_TOTO_PAYLOAD_TYPE))
    announced = layer.annotations.get(PREDICATE_TYPE_ANNOTATION)
    if announced is not None and announced != claims["predicateType"]:
        raise Refusal(f"predicateType annotation {announced} differs from the signed {claims['predicateType']}")
    _subject(claims, digest)
    return claims


def _subject(claims: Mapping[str, Any], digest: str) -> None:
    subjects = [entry["digest"].get("sha256") for entry in claims["subject"]]
    if digest.removeprefix("sha256:") not in subjects:
        named = ", ".join(f"sha256:{hex_}" for hex_ in subjects if isinstance(hex_, str)) or "no sha256 digest"
        raise Refusal(f"subject is another digest: {named}, not {digest}")


def _open(envelope: bytes, key: PublicKey, payload_type: str) -> bytes:
    """The signed payload; Refusal with the first thing wrong with the envelope otherwise."""
    try:
        document = json.loads(envelope)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise Refusal("garbled envelope: not JSON (truncated?)") from None
    if not isinstance(document, dict):
        raise Refusal("garbled envelope: not a JSON object")
    kind, encoded, signatures = (document.get(k) for k in ("payloadType", "payload", "signatures"))
    if not isinstance(encoded, str) or not isinstance(kind, str):
        raise Refusal("garbled envelope: no payload or payloadType")
    if kind != payload_type:
        raise Refusal(f"envelope payloadType is {kind}, not {payload_type}")
    if not isinstance(signatures, list) or not signatures:
        raise Refusal("garbled envelope: no signatures")
    try:
        payload = b64decode_any(encoded)
    except ValueError:
        raise Refusal("garbled envelope: payload is not base64") from None
    message = pae(kind, payload)
    for entry in signatures:
        if not isinstance(entry, dict) or not isinstance(entry.get("sig"), str):
            raise Refusal("garbled envelope: a signature entry has no sig")
        try:
            signature = b64decode_any(entry["sig"])
        except ValueError:
            raise Refusal("garbled envelope: a signature is not base64") from None
        if ecdsa_verify(key, signature, message):
            return payload
    raise Refusal("bad signature: the envelope does not verify with this key")


def _statement(payload: bytes) -> dict[str, Any]:
    try:
        claims = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise Refusal("garbled statement: not JSON") from None
    if not isinstance(claims, dict) or claims.get("_type") not in STATEMENT_TYPES:
        raise Refusal("garbled statement: not an in-toto v0.1 or v1 statement")
    if not isinstance(claims.get("predicateType"), str):
        raise Refusal("garbled statement: no predicateType")
    subjects = claims.get("subject")
    if (
        not isinstance(subjects, list)
        or not subjects
        or not all(isinstance(entry, dict) and isinstance(entry.get("digest"), dict) for entry in subjects)
    ):
        raise Refusal("garbled statement: no subject with a digest")
    return claims
