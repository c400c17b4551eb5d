"""Signing and attesting an image where it lives (a registry repository or an OCI layout), as cosign does.

Signatures go to the `sha256-<hex>.sig` tag (simple signing) or, with the bundle format, into a
Sigstore bundle referrer listed under the referrers tag schema's `sha256-<hex>` index; attestations
(in-toto statements in DSSE envelopes) go to `sha256-<hex>.att`. One image never gets both
signature formats.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from builder.errors import CheckFailed, UsageError
from builder.sign import bundle, cosign, dsse
from builder.sign.encoding import sha256_digest
from builder.sign.keys import PrivateKey
from builder.sign.oci import OCI_MANIFEST, Attachment, Garbled, SignatureImage, attachment_tag, parse_image
from builder.upstream.images import Resolved, Store

Format = Literal["simple", "bundle"]


@dataclass(frozen=True)
class Attached:
    """What a sign or attest wrote: the tag (or referrer digest), the digest of the manifest written
    there, and whether anything changed (a signature already there is not added twice)."""

    where: str
    manifest: str
    added: bool

    def to_json(self) -> dict[str, Any]:
        return {"where": self.where, "manifest": self.manifest, "added": self.added}


def read_attachments(resolved: Resolved, suffix: str) -> tuple[bytes | None, dict[str, bytes]]:
    """The `.sig` or `.att` manifest of the image (None: none yet) and the blobs of its readable layers."""
    found = resolved.store.manifest(attachment_tag(resolved.digest, suffix))
    if found is None:
        return None, {}
    manifest = found[0]
    blobs: dict[str, bytes] = {}
    try:
        layers = parse_image(manifest, what=f"the .{suffix} manifest").layers
    except CheckFailed:
        return manifest, blobs  # verification names what is garbled
    for layer in layers:
        if not isinstance(layer, Garbled):
            try:
                blobs[layer.digest] = resolved.store.blob(layer.digest)
            except CheckFailed:
                continue  # a missing or damaged blob: verification says so for that layer
    return manifest, blobs


def _push(store: Store, image: SignatureImage, attachments: list[Attachment], tag: str) -> str:
    store.put_blob(image.config)
    for attachment in attachments:
        store.put_blob(attachment.blob)
    return store.put_manifest(tag, image.manifest, image.media_type)


def _bundles(resolved: Resolved) -> list[str]:
    found = resolved.store.manifest(bundle.fallback_tag(resolved.digest))
    return bundle.bundle_referrers(found[0]) if found else []


def sign(resolved: Resolved, key: PrivateKey, fmt: Format = "simple", created: str | None = None) -> Attached:
    """Sign the image's manifest digest with `key`, appending to signatures already there."""
    if fmt == "simple":
        if _bundles(resolved):
            raise UsageError(
                f"{resolved.ref.at(resolved.digest)} is signed in the bundle format; sign it with --format bundle"
            )
        existing, _ = read_attachments(resolved, "sig")
        attachment = cosign.sign_image(key, resolved.ref.name, resolved.digest)
        image = cosign.append_signature(existing, attachment, key.public_key())
        tag = cosign.signature_tag(resolved.digest)
        if image is None:
            return Attached(tag, sha256_digest(existing or b""), False)
        return Attached(tag, _push(resolved.store, image, [attachment], tag), True)
    if resolved.store.manifest(cosign.signature_tag(resolved.digest)) is not None:
        raise UsageError(
            f"{resolved.ref.at(resolved.digest)} has signatures in the .sig format; sign it without --format bundle"
        )
    made = bundle.make_bundle(key, bundle.sign_statement(resolved.digest))
    subject = bundle.Subject(resolved.media_type, len(resolved.manifest), resolved.digest)
    stamp = created or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    manifest = bundle.referrer_manifest(made, subject, bundle.COSIGN_SIGN_PREDICATE_TYPE, stamp)
    store = resolved.store
    store.put_blob(bundle.EMPTY_CONFIG)
    store.put_blob(made)
    digest = store.put_manifest(sha256_digest(manifest), manifest, OCI_MANIFEST)
    tag = bundle.fallback_tag(resolved.digest)
    listed = store.manifest(tag)
    index = bundle.add_to_referrers_index(listed[0] if listed else None, manifest)
    if index is not None:
        store.put_manifest(tag, index, bundle.INDEX_MEDIA_TYPE)
    return Attached(digest, digest, True)


def attest(
    resolved: Resolved, key: PrivateKey, predicate_type: str, predicate: object, *, replace: bool = True
) -> Attached:
    """An in-toto statement about the image's digest, signed in a DSSE envelope, added to its `.att`
    image (one per predicate type: a newer one replaces the older)."""
    attachment = dsse.attest(key, resolved.ref.name, resolved.digest, predicate_type, predicate)
    existing, _ = read_attachments(resolved, "att")
    image = dsse.append_attestation(existing, attachment, replace=replace)
    tag = dsse.attestation_tag(resolved.digest)
    return Attached(tag, _push(resolved.store, image, [attachment], tag), True)
