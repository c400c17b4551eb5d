"""Building nothing when nothing changed: an image's content key, and whether what the last build
recorded (out/<stack>/<target>/result.json) still stands for it.

The content key of an app image is the hash of everything that makes it: the lock checksum, the
digest of the rendered build context (Dockerfile, requirements, app files; source builds by their
stage keys), the engine, the platform, the tags and where the image goes (a registry or an OCI
layout). When the key is the one recorded and the registry (or the layout) still holds the recorded
digest under every tag, `build stack` makes no engine call and no push, and reuses the SBOMs and
the signature and attestations recorded for that digest once it has checked they are still there.

The key functions are pure; the checks read result.json, SBOM files and registries (through
builder.upstream, imported when a check runs).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from builder import __version__

if TYPE_CHECKING:
    from builder.upstream.http import HttpClient
    from builder.upstream.images import Store

KEY_FORMAT = "1"
SITE_FILES = ("sbom/policy.yaml", "sbom/syft.yaml")  # what builder's SBOMs depend on besides the image


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def context_digest(files: Mapping[str, bytes]) -> str:
    """One digest over a rendered build context: every file's name and bytes."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(f"{name}\0{len(files[name])}\0".encode() + files[name])
    return "sha256:" + digest.hexdigest()


def content_key(
    *, lock_checksum: str, context: str, engine: str, platform: str, tags: Sequence[str], stored: str
) -> str:
    """The app image's content key: what the image is made from and where it goes."""
    parts = {
        "format": KEY_FORMAT,
        "lock-checksum": lock_checksum,
        "context": context,
        "engine": engine,
        "platform": platform,
        "tags": list(tags),
        "stored": stored,
    }
    return _sha256(json.dumps(parts, sort_keys=True).encode())


def site_files(root: Path) -> dict[str, bytes | None]:
    """The site's SBOM settings beside the catalogue (None where a file is absent)."""
    found: dict[str, bytes | None] = {}
    for name in SITE_FILES:
        try:
            found[name] = (root / name).read_bytes()
        except OSError:
            found[name] = None
    return found


def sbom_key(digest: str, lock_checksum: str, site: Mapping[str, bytes | None]) -> str:
    """What the SBOMs of an image are a function of: its digest, the lock joined with syft's
    findings, the site's settings, and builder (which pins syft)."""
    parts = {
        "digest": digest,
        "lock-checksum": lock_checksum,
        "site": {name: None if data is None else _sha256(data) for name, data in sorted(site.items())},
        "builder": __version__,
    }
    return _sha256(json.dumps(parts, sort_keys=True).encode())


def read_result(directory: Path) -> dict[str, Any] | None:
    """The result.json the last build of this stack x target wrote, if it reads."""
    try:
        found = json.loads((directory / "result.json").read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


# ---------------------------------------------------------------- is the recorded image still there?


def image_missing(previous: dict[str, Any] | None, key: str, http: HttpClient | None, *, insecure: bool) -> str | None:
    """Why the image `previous` records cannot stand for a build with content key `key` (None: it
    can). A registry that does not answer is an error (exit 3), as it would be for the push; `http`
    is needed for a registry only."""
    if previous is None:
        return "no earlier build in this output directory"
    if previous.get("content-key") != key:
        return "its inputs changed since the last build"
    try:
        image = previous["image"]
        digest, tags = str(image["digest"]), [str(tag) for tag in image["tags"]]
        if image["stored"] == "registry":
            if http is None:
                raise ValueError("a registry image needs an HTTP client to be checked")
            return _registry_missing(digest, tags, http, insecure)
        return _layout_missing(Path(image["oci-layout"]), digest, tags[-1].rpartition(":")[2])
    except (KeyError, TypeError):
        return "the last result.json does not say where its image is"


def _registry_missing(digest: str, tags: list[str], http: HttpClient, insecure: bool) -> str | None:
    from dataclasses import replace

    from builder.upstream.images import open_store, parse_image

    for tag in tags:
        ref = replace(parse_image(tag), insecure=insecure)
        found = open_store(ref, http).manifest(str(ref.tag))
        if found is None:
            return f"{tag} is no longer in the registry"
        if _sha256(found[0]) != digest:
            return f"{tag} now names {_sha256(found[0])}, not {digest}"
    return None


def _layout_missing(layout: Path, digest: str, tag: str) -> str | None:
    """The layout still lists `digest` under `tag`, and holds its manifest, config and layers."""
    blobs = layout / "blobs" / "sha256"
    try:
        index = json.loads((layout / "index.json").read_text())
        listed = {
            entry.get("annotations", {}).get("org.opencontainers.image.ref.name"): entry.get("digest")
            for entry in index.get("manifests", [])
        }
        if listed.get(tag) != digest:
            return f"oci:{layout} no longer lists {digest} as {tag}"
        manifest_bytes = (blobs / digest.removeprefix("sha256:")).read_bytes()
        manifest = json.loads(manifest_bytes)
        needed = [manifest["config"], *manifest["layers"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return f"oci:{layout} no longer holds {digest}"
    if _sha256(manifest_bytes) != digest:
        return f"oci:{layout}: the manifest of {digest} was changed"
    for blob in needed:  # sizes, not hashes: a layer of a CUDA image is gigabytes
        path = blobs / str(blob["digest"]).removeprefix("sha256:")
        if not path.is_file() or path.stat().st_size != int(blob["size"]):
            return f"oci:{layout} lost the blob {blob['digest']}"
    return None


# ---------------------------------------------------------------- proofs recorded for that digest


def reusable_sbom(previous: dict[str, Any], key: str) -> dict[str, Any] | None:
    """The `sbom` section of `previous` when it was made under `key` and both files are still the
    ones it names (by digest); None otherwise."""
    sbom = previous.get("sbom")
    if not isinstance(sbom, dict) or sbom.get("key") != key:
        return None
    try:
        for kind in ("spdx", "cyclonedx"):
            if _sha256(Path(sbom["paths"][kind]).read_bytes()) != sbom["files"][kind]["digest"]:
                return None
    except (OSError, KeyError, TypeError):
        return None
    return sbom


def reusable_signature(previous: dict[str, Any], digest: str, key_hint: str, store: Store) -> bool:
    """Whether the signature and attestations `previous` records for `digest`, made with the key
    whose hint is `key_hint`, are still what `store` (the image's registry repository or layout)
    holds beside the image."""
    signature, attestations = previous.get("signature"), previous.get("attestations")
    if not isinstance(signature, dict) or not isinstance(attestations, list) or not attestations:
        return False
    if signature.get("key") != key_hint or previous.get("image", {}).get("digest") != digest:
        return False
    for where, manifest in ((signature.get("where"), signature.get("manifest")),
                            (attestations[-1].get("where"), attestations[-1].get("manifest"))):  # fmt: skip
        found = store.manifest(str(where))
        if found is None or _sha256(found[0]) != manifest:
            return False
    return True


# ---------------------------------------------------------------- the result of a build that built nothing


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def fast_path_line(previous: dict[str, Any]) -> str:
    image = previous["image"]
    where = "in the registry" if image["stored"] == "registry" else f"in oci:{image['oci-layout']}"
    return (
        f"{previous['target']}: unchanged since the build of {previous.get('built') or previous.get('started', '?')} "
        f"(content key {previous['content-key'][:19]}...); {image['reference']} is still {where} "
        "under its tags: no engine call, no push (--force builds anyway)"
    )


def fast_result(previous: dict[str, Any], started_on: str, seconds: float) -> dict[str, Any]:
    """The result of a build that found its image already made: the recorded image, nothing run.
    The SBOMs, signature and attestations are added by whoever checked that they still hold."""
    result = {key: value for key, value in previous.items() if key not in ("sbom", "signature", "attestations")}
    result.update(
        {
            "created-by": f"builder {__version__}",
            "fast-path": True,
            "built": previous.get("built") or previous.get("started"),  # when the image was made
            "stages": [],
            "wheel_cache": {},
            "started": started_on,
            "finished": utc_now(),
            "seconds": round(seconds, 2),
        }
    )
    return result
