"""Sigstore bundles stored as OCI 1.1 referrers, what cosign v3 writes by default (`--new-bundle-format`).

A bundle wraps a DSSE envelope, which cosign verifies with `--key`. The referrer manifest names the signed image as its
`subject`. distribution 2.8 has no referrers API, so clients also keep an OCI index under the tag `sha256-<hex>`
(the referrers tag schema).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from builder.errors import CheckFailed
from builder.sign.dsse import (
    IN_TOTO_PAYLOAD_TYPE,
    STATEMENT_V1,
    check_subject,
    open_envelope,
    read_statement,
    sign_envelope,
)
from builder.sign.encoding import DIGEST, check_digest, go_json, sha256_digest
from builder.sign.keys import PrivateKey, PublicKey, public_key_hint
from builder.sign.oci import MAX_BLOB, OCI_MANIFEST, Layer, LayerVerdict, Refusal, read_blob

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
COSIGN_SIGN_PREDICATE_TYPE = "https://sigstore.dev/cosign/sign/v1"  # what `cosign sign` states in a bundle
EMPTY_CONFIG = b"{}"
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
CONTENT_ANNOTATION = "dev.sigstore.bundle.content"
PREDICATE_TYPE_ANNOTATION = "dev.sigstore.bundle.predicateType"
CREATED_ANNOTATION = "org.opencontainers.image.created"


@dataclass(frozen=True)
class Subject:
    """The manifest a referrer points at: its media type, size and digest."""

    media_type: str
    size: int
    digest: str


def sign_statement(digest: str) -> bytes:
    """The in-toto v1 statement `cosign sign` puts in a bundle: the digest alone, no name, an empty predicate."""
    check_digest(digest)
    subject = {"digest": {"sha256": digest.removeprefix("sha256:")}}
    return go_json(
        {"_type": STATEMENT_V1, "subject": [subject], "predicateType": COSIGN_SIGN_PREDICATE_TYPE, "predicate": {}}
    )


def make_bundle(key: PrivateKey, statement: bytes) -> bytes:
    """A v0.3 bundle: the public key's hint and a DSSE envelope over `statement`, with no transparency log entry."""
    envelope = json.loads(sign_envelope(key, statement, IN_TOTO_PAYLOAD_TYPE))
    return go_json(
        {
            "mediaType": BUNDLE_MEDIA_TYPE,
            "verificationMaterial": {"publicKey": {"hint": public_key_hint(key.public_key())}},
            "dsseEnvelope": envelope,
        }
    )


def referrer_manifest(bundle: bytes, subject: Subject, predicate_type: str, created: str) -> bytes:
    """The referrer manifest cosign's WriteReferrer PUTs by digest; upload EMPTY_CONFIG and `bundle` as blobs first."""
    check_digest(subject.digest)
    layer = {"mediaType": BUNDLE_MEDIA_TYPE, "size": len(bundle), "digest": sha256_digest(bundle)}
    config = {
        "mediaType": EMPTY_MEDIA_TYPE,
        "size": len(EMPTY_CONFIG),
        "digest": sha256_digest(EMPTY_CONFIG),
        "artifactType": BUNDLE_MEDIA_TYPE,
    }
    annotations = {
        CONTENT_ANNOTATION: "dsse-envelope",
        PREDICATE_TYPE_ANNOTATION: predicate_type,
        CREATED_ANNOTATION: created,
    }
    # cosign's referrerManifest embeds ggcr's Manifest and adds artifactType, which Go therefore writes last.
    return go_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config,
            "layers": [layer],
            "annotations": dict(sorted(annotations.items())),
            "subject": {"mediaType": subject.media_type, "size": subject.size, "digest": subject.digest},
            "artifactType": BUNDLE_MEDIA_TYPE,
        }
    )


def fallback_tag(digest: str) -> str:
    """The referrers tag schema's tag for `digest`: sha256-<hex>, with no suffix."""
    return check_digest(digest).replace(":", "-")


def add_to_referrers_index(existing: bytes | None, manifest: bytes) -> bytes | None:
    """The fallback index (None: none yet) listing `manifest` too, sorted by digest; None if it is listed already."""
    entries: list[dict[str, Any]] = []
    if existing is not None:
        try:
            index = json.loads(existing)
            entries = list(index["manifests"])
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
            raise CheckFailed("the referrers fallback index is garbled") from None
    digest = sha256_digest(manifest)
    if any(isinstance(entry, dict) and entry.get("digest") == digest for entry in entries):
        return None
    document = json.loads(manifest)
    entry: dict[str, Any] = {
        "mediaType": document.get("mediaType", OCI_MANIFEST),
        "size": len(manifest),
        "digest": digest,
    }
    if document.get("annotations"):
        entry["annotations"] = dict(sorted(document["annotations"].items()))  # the spec asks for all of them
    entry["artifactType"] = document.get("artifactType") or document["config"]["mediaType"]
    entries.append(entry)
    entries.sort(key=lambda item: str(item.get("digest", "")) if isinstance(item, dict) else "")
    return go_json({"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": entries})


def bundle_referrers(index: bytes) -> list[str]:
    """Digests of the Sigstore bundle referrers an index (referrers API answer or fallback tag) lists."""
    try:
        entries = json.loads(index)["manifests"]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
        raise CheckFailed("the referrers index is garbled") from None
    return [
        entry["digest"]
        for entry in entries
        if isinstance(entry, dict)
        and str(entry.get("artifactType", "")).startswith("application/vnd.dev.sigstore.bundle")
        and isinstance(entry.get("digest"), str)
        and DIGEST.fullmatch(entry["digest"])
    ]


def verify_bundle(bundle: bytes, key: PublicKey, digest: str) -> dict[str, Any]:
    """The statement of a bundle `key` signed with `digest` as a subject; CheckFailed with a one-line reason otherwise."""
    check_digest(digest)
    try:
        return _verify_bundle(bundle, key, digest)
    except Refusal as refusal:
        raise CheckFailed(str(refusal)) from None


def verify_referrer(manifest: bytes, blobs: Mapping[str, bytes], key: PublicKey, digest: str) -> LayerVerdict:
    """The verdict on one referrer manifest: exactly one bundle layer, signed by `key`, about `digest`."""
    check_digest(digest)
    where = sha256_digest(manifest)
    try:
        layer = _bundle_layer(manifest, digest)
        return LayerVerdict(0, where, None, _verify_bundle(read_blob(layer, blobs), key, digest))
    except Refusal as refusal:
        return LayerVerdict(0, where, str(refusal))


def _bundle_layer(manifest: bytes, digest: str) -> Layer:
    try:
        document = json.loads(manifest)
        [layer] = document["layers"]
        media_type, size, blob_digest = layer["mediaType"], layer["size"], layer["digest"]
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise Refusal("garbled referrer manifest: not JSON") from None
    except (KeyError, TypeError, ValueError):
        raise Refusal("garbled referrer manifest: not exactly one layer descriptor") from None
    if not str(media_type).startswith("application/vnd.dev.sigstore.bundle"):
        raise Refusal(f"referrer layer media type {media_type} is not a Sigstore bundle")
    if type(size) is not int or not isinstance(blob_digest, str) or not DIGEST.fullmatch(blob_digest):
        raise Refusal("garbled referrer manifest: bad layer descriptor")
    subject = document.get("subject")
    if isinstance(subject, dict) and subject.get("digest") not in (None, digest):
        raise Refusal(f"referrer subject is another digest: {subject.get('digest')}, not {digest}")
    if size > MAX_BLOB:
        raise Refusal(f"bundle of {size} bytes is over cosign's limit")
    return Layer(media_type, size, blob_digest)


def _verify_bundle(bundle: bytes, key: PublicKey, digest: str) -> dict[str, Any]:
    try:
        document = json.loads(bundle)
        media_type, envelope = document["mediaType"], document["dsseEnvelope"]
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise Refusal("garbled bundle: not JSON (truncated?)") from None
    except (KeyError, TypeError):
        raise Refusal("garbled bundle: no mediaType or dsseEnvelope") from None
    if not _supported(media_type):
        raise Refusal(f"bundle media type {media_type} is not v0.3 or later")
    if not isinstance(envelope, dict):
        raise Refusal("garbled bundle: dsseEnvelope is not an object")
    try:
        claims = read_statement(open_envelope(json.dumps(envelope).encode(), key, IN_TOTO_PAYLOAD_TYPE))
        check_subject(claims, digest)
    except CheckFailed as failure:
        raise Refusal(failure.message) from None
    return claims


def _supported(media_type: object) -> bool:
    """v0.3 and later, as cosign requires of referrer bundles."""
    prefix, suffix = "application/vnd.dev.sigstore.bundle.v", "+json"
    if not isinstance(media_type, str) or not media_type.startswith(prefix) or not media_type.endswith(suffix):
        return False
    try:
        version = tuple(int(part) for part in media_type[len(prefix) : -len(suffix)].split("."))
    except ValueError:
        return False
    return version >= (0, 3)
