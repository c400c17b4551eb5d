"""Copying one image manifest with its blobs between stores (a registry repository, an OCI layout),
byte for byte, so that its digest (and with it every signature over it) is kept."""

from __future__ import annotations

import json

from builder.bundle.layout import Descriptor, referenced_blobs
from builder.errors import CheckFailed, UsageError
from builder.sign.encoding import sha256_digest
from builder.upstream.images import MANIFEST_TYPES, Store

INDEX_TYPES = (MANIFEST_TYPES[1], MANIFEST_TYPES[3])


def read_manifest(store: Store, reference: str, what: str) -> tuple[bytes, Descriptor]:
    """The manifest `reference` names in `store`, and its descriptor; a missing one is a failed check."""
    found = store.manifest(reference)
    if found is None:
        raise CheckFailed(f"{what}: no manifest {reference}")
    data, media_type = found
    if media_type in INDEX_TYPES:
        raise UsageError(f"{what}: {reference} is a multi-platform index; a bundle holds one platform's image")
    return data, Descriptor(media_type, sha256_digest(data), len(data))


def copy_manifest(source: Store, destination: Store, reference: str, tag: str, what: str) -> Descriptor:
    """Copy the manifest `reference` names and every blob it references, and tag it `tag`; the
    digest written is the digest read, or the copy is refused."""
    data, descriptor = read_manifest(source, reference, what)
    for blob in referenced_blobs(json.loads(data)):
        destination.put_blob(source.blob(blob.digest))
    written = destination.put_manifest(tag, data, descriptor.media_type)
    if written != descriptor.digest:
        raise CheckFailed(f"{what}: {tag} was stored as {written}, not {descriptor.digest}")
    return descriptor
