"""What an air-gapped bundle holds and where, as pure functions: member names, the manifest that
lists every member with its sha256, the `cosign save` index of its OCI layout, and the wheels a
bundle must carry (from the lock and the signed provenance).

A bundle is one tar:

    manifest.json                               this bundle: stack, target, image, every other member
    oci/oci-layout, oci/index.json, oci/blobs/  the image by digest, its .sig and .att images
                                                (the layout `cosign save` writes, `kind` annotations too)
    wheels/<file>.whl                           the locked wheels and the wheels the build made
    lock/<stack>/<target>/...                   pylock.toml, image-lock.json, build pylocks (a --lock-dir)
    sbom/sbom.spdx.json, sbom/sbom.cdx.json     the SBOMs the image is attested with
    smoke.json                                  the attested smoke result, when there is one
    cosign.pub                                  the public key the image is signed with
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from builder.errors import CheckFailed
from builder.lock.model import LockedPlatform
from builder.plan.stages import Requirement, locked_requirements
from builder.rules.platform import TargetPlatform
from builder.upstream.images import COSIGN_KIND, KINDS, REF_NAME

BUNDLE_VERSION = 1
MANIFEST = "manifest.json"
PUBLIC_KEY = "cosign.pub"
SMOKE = "smoke.json"
LAYOUT = "oci"
WHEELS = "wheels"
LOCKS = "lock"
SBOMS = {"spdx": "sbom/sbom.spdx.json", "cyclonedx": "sbom/sbom.cdx.json"}
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_LAYOUT_FILE = b'{"imageLayoutVersion":"1.0.0"}'
_NAME = re.compile(r"[A-Za-z0-9_.+-]+(/[A-Za-z0-9_.+-]+)*")


@dataclass(frozen=True, order=True)
class Member:
    """One file of a bundle: its name in the tar, size and sha256 (hex)."""

    name: str
    size: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"path": self.name, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True)
class Descriptor:
    """An OCI descriptor of a manifest in the layout's index."""

    media_type: str
    digest: str
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass(frozen=True)
class BundleManifest:
    """manifest.json, read back."""

    stack: str
    target: str
    platform: str
    digest: str  # the image's manifest digest
    tag: str  # its ref name in the layout
    image_bytes: int  # manifest, config and layers: what a registry stores for it
    lock_checksum: str
    members: tuple[Member, ...]


def safe_name(name: str) -> bool:
    """A member name a bundle may hold: relative, no `..`, plain characters (nothing to escape)."""
    return bool(_NAME.fullmatch(name)) and ".." not in PurePosixPath(name).parts


def blob_name(digest: str) -> str:
    return f"{LAYOUT}/blobs/sha256/{digest.removeprefix('sha256:')}"


def blob_digest(name: str) -> str | None:
    """The digest a layout blob's member name claims, or None for any other member."""
    prefix = f"{LAYOUT}/blobs/sha256/"
    hex_ = name.removeprefix(prefix)
    return f"sha256:{hex_}" if name.startswith(prefix) and re.fullmatch(r"[0-9a-f]{64}", hex_) else None


def lock_member(stack: str, target: str, filename: str) -> str:
    return f"{LOCKS}/{stack}/{target}/{filename}"


def render_manifest(
    *,
    stack: str,
    target: str,
    platform: str,
    digest: str,
    tag: str,
    image_bytes: int,
    lock_checksum: str,
    created_by: str,
    members: Iterable[Member],
) -> bytes:
    """manifest.json: sorted keys, sorted members, no times, so the same inputs give the same bytes."""
    document = {
        "bundle-version": BUNDLE_VERSION,
        "created-by": created_by,
        "stack": stack,
        "target": target,
        "platform": platform,
        "image": {"digest": digest, "tag": tag, "bytes": image_bytes},
        "lock-checksum": lock_checksum,
        "files": [member.to_json() for member in sorted(members)],
    }
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()


def parse_manifest(data: bytes) -> BundleManifest:
    """manifest.json as written by `render_manifest`; CheckFailed naming what is wrong otherwise
    (a manifest that parses but is not byte for byte its own rendering has been edited)."""
    try:
        document = json.loads(data)
        image = document["image"]
        members = tuple(Member(str(f["path"]), int(f["size"]), str(f["sha256"])) for f in document["files"])
        parsed = BundleManifest(
            stack=str(document["stack"]),
            target=str(document["target"]),
            platform=str(document["platform"]),
            digest=str(image["digest"]),
            tag=str(image["tag"]),
            image_bytes=int(image["bytes"]),
            lock_checksum=str(document["lock-checksum"]),
            members=members,
        )
        version, created_by = document["bundle-version"], str(document["created-by"])
    except (ValueError, KeyError, TypeError) as error:
        raise CheckFailed(f"{MANIFEST} is corrupt: {type(error).__name__} {error}") from None
    if version != BUNDLE_VERSION:
        raise CheckFailed(f"{MANIFEST} is bundle-version {version!r}; this builder reads version {BUNDLE_VERSION}")
    again = render_manifest(
        stack=parsed.stack, target=parsed.target, platform=parsed.platform, digest=parsed.digest, tag=parsed.tag,
        image_bytes=parsed.image_bytes, lock_checksum=parsed.lock_checksum, created_by=created_by, members=members,
    )  # fmt: skip
    if again != data:
        raise CheckFailed(f"{MANIFEST} was edited: it is not in the form builder writes")
    return parsed


def layout_index(image: Descriptor, tag: str, signatures: Descriptor, attestations: Descriptor | None) -> bytes:
    """The layout's index.json as `cosign save` writes it (each entry's `kind`), with ref names
    too, so that skopeo, `build verify oci:DIR` and `cosign verify --local-image DIR` all read it."""
    hex_ = image.digest.removeprefix("sha256:")
    entries = [
        (image, {COSIGN_KIND: KINDS["image"], REF_NAME: tag}),
        (signatures, {COSIGN_KIND: KINDS["sig"], REF_NAME: f"sha256-{hex_}.sig"}),
    ]
    if attestations is not None:
        entries.append((attestations, {COSIGN_KIND: KINDS["att"], REF_NAME: f"sha256-{hex_}.att"}))
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{**descriptor.to_json(), "annotations": annotations} for descriptor, annotations in entries],
    }
    return (json.dumps(index, indent=2) + "\n").encode()


def referenced_blobs(manifest: Mapping[str, Any]) -> list[Descriptor]:
    """The config and layer descriptors of an image manifest."""
    found = [manifest["config"]] if isinstance(manifest.get("config"), dict) else []
    found += [entry for entry in manifest.get("layers") or [] if isinstance(entry, dict)]
    return [Descriptor(str(d.get("mediaType", "")), str(d["digest"]), int(d.get("size", 0))) for d in found]


def wheel_filename(url: str) -> str:
    return unquote(urlsplit(url).path.rpartition("/")[2])


def built_wheels(provenance: Mapping[str, Any]) -> dict[str, str]:
    """Filename -> sha256 of the wheels a build's source stages made, from its signed provenance."""
    byproducts = (provenance.get("runDetails") or {}).get("byproducts") or []
    return {
        str(entry["name"]): str(entry["digest"]["sha256"])
        for entry in byproducts
        if isinstance(entry, dict) and str(entry.get("uri", "")).startswith("wheel:")
    }


def wheel_problems(members: Mapping[str, str], locked: Mapping[str, str], built: Mapping[str, str]) -> list[str]:
    """Where the bundle's wheels (filename -> sha256) and those the lock and the provenance name
    disagree: each wheel must be one of them with the same hash, and each of them must be there."""
    wanted = {**locked, **built}
    problems = []
    for name, sha in sorted(members.items()):
        member = f"{WHEELS}/{name}"
        if name not in wanted:
            problems.append(f"{member}: neither the lock nor the signed provenance names this wheel")
        elif sha != wanted[name]:
            origin = "the lock" if name in locked else "the signed provenance"
            problems.append(f"{member}: sha256 {sha}, {origin} records {wanted[name]}")
    for name in sorted(set(wanted) - set(members)):
        origin = "locked" if name in locked else "built"
        problems.append(f"{WHEELS}/{name}: missing (a {origin} wheel)")
    return problems


def locked_files(pylock: str, platform: LockedPlatform) -> list[Requirement]:
    """The wheel of every locked package on the lock's platform: what the image installed
    (source-built packages are the build's wheels instead)."""
    major, _, minor = platform.glibc.partition(".")
    target = TargetPlatform(platform.python, platform.arch, (int(major), int(minor or 0)), platform.cuda)
    return locked_requirements(pylock, target)


def locked_wheels(pylock: str, platform: LockedPlatform) -> dict[str, str]:
    """Filename -> sha256 of `locked_files`."""
    return {wheel_filename(r.url): r.sha256 for r in locked_files(pylock, platform)}
