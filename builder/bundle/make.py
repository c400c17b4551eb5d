"""`build bundle`: one tar with everything a site without a network needs, from what `build stack
--sign-key` left in out/<stack>/<target>/ (result.json, the OCI layout or the pushed image, SBOMs,
cosign.pub), the lock, the wheel cache and the index the lock names. The IO edge of the bundle."""

from __future__ import annotations

import json
import tarfile
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder import __version__
from builder.bundle.copy import copy_manifest, read_manifest
from builder.bundle.layout import (
    LAYOUT,
    MANIFEST,
    OCI_LAYOUT_FILE,
    PUBLIC_KEY,
    SBOMS,
    SMOKE,
    WHEELS,
    Descriptor,
    blob_name,
    built_wheels,
    layout_index,
    lock_member,
    locked_files,
    locked_wheels,
    referenced_blobs,
    render_manifest,
    wheel_filename,
    wheel_problems,
)
from builder.bundle.tarball import Source, describe, write_bundle
from builder.errors import CheckFailed, UsageError, display_path
from builder.lock.model import Lock, read_lock
from builder.lock.paths import lock_paths
from builder.sign import dsse
from builder.sign.keys import PublicKey, load_public_key
from builder.upstream.http import HttpClient
from builder.upstream.images import LayoutStore, Resolved, parse_image, resolve
from builder.verify import SMOKE as SMOKE_PREDICATE
from builder.verify import LockedContent, attested, verify

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BundleRequest:
    stack: str
    target: str
    results: Path  # where build stack wrote <stack>/<target>/result.json
    lock_dir: Path
    cache_dir: Path  # the wheel cache the build used
    out: Path


def make_bundle(request: BundleRequest, http: HttpClient, progress: Progress) -> dict[str, Any]:
    """Write the bundle; returns what it holds (sizes, digest, members)."""
    _check_out(request.out)
    directory = request.results / request.stack / request.target
    result = _read_result(directory / "result.json", request)
    public_pem, key = _public_key(result, directory)
    lock = read_lock(lock_paths(request.lock_dir, request.stack, request.target))
    if lock.checksum != result["lock-checksum"]:
        raise CheckFailed(
            f"{display_path(lock.paths.image_lock)} is lock {lock.checksum}; the image was built from "
            f"{result['lock-checksum']}",
            hint="bundle the lock the image was built from (--lock-dir)",
        )
    with tempfile.TemporaryDirectory(prefix="builder-bundle-") as scratch:
        resolved = _image(result, http, Path(scratch) / "oci", progress)
        members: dict[str, Source] = {PUBLIC_KEY: public_pem}
        image_bytes = _layout_members(resolved, result, members)
        statements = _proof(resolved, key, lock, directory / PUBLIC_KEY)
        _sbom_members(result, statements, members)
        smoke = [s["predicate"] for s in statements if s.get("predicateType") == SMOKE_PREDICATE]
        if smoke:
            members[SMOKE] = (json.dumps(smoke[-1], indent=2) + "\n").encode()
        provenance = next(s["predicate"] for s in statements if s.get("predicateType") == dsse.SLSA_PROVENANCE_V1)
        wheels = _wheel_members(lock, result, provenance, request.cache_dir, http, Path(scratch) / "wheels", progress)
        members.update(wheels)
        for path in [lock.paths.pylock, lock.paths.image_lock, *map(lock.paths.build_pylock, lock.build_pylocks)]:
            members[lock_member(request.stack, request.target, path.name)] = path
        listed = [describe(name, source) for name, source in members.items()]
        manifest = render_manifest(
            stack=request.stack, target=request.target, platform=str(result.get("platform", "")),
            digest=resolved.digest, tag=_tag(result), image_bytes=image_bytes, lock_checksum=lock.checksum,
            created_by=f"builder {__version__}", members=listed,
        )  # fmt: skip
        progress(f"writing {request.out} ({len(members) + 1} members)")
        write_bundle(request.out, manifest, members)
    return {
        "bundle": str(request.out),
        "bytes": request.out.stat().st_size,
        "image": {"digest": resolved.digest, "tag": _tag(result), "bytes": image_bytes},
        "wheels": sorted(name.removeprefix(f"{WHEELS}/") for name in wheels),
        "smoke": bool(smoke),
        "members": len(members) + 1,
    }


def _check_out(out: Path) -> None:
    """A new file in an existing directory, or a bundle written before (never another file)."""
    if out.is_dir():
        raise UsageError(f"--out {out}: is a directory; name the bundle file (e.g. {out}/bundle.tar)")
    if not out.parent.is_dir():
        raise UsageError(f"--out {out}: the directory {out.parent} does not exist")
    if out.exists() and not _is_bundle(out):
        raise UsageError(f"--out {out}: exists and is not a bundle; not overwriting it")


def _is_bundle(path: Path) -> bool:
    try:
        with tarfile.open(path, mode="r:") as tar:
            first = tar.next()
    except (tarfile.TarError, OSError, EOFError):
        return False
    return first is not None and first.name == MANIFEST


def _read_result(path: Path, request: BundleRequest) -> dict[str, Any]:
    try:
        result: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(
            f"{display_path(path)}: no build of {request.stack} on {request.target} here",
            hint=f"build stack {request.stack} --target {request.target} --sign-key KEY (--results names the out dir)",
        ) from None
    except ValueError as error:
        raise UsageError(f"{display_path(path)} is corrupt: {error}") from None
    if "signature" not in result:
        raise UsageError(
            f"{display_path(path)}: the image {result['image']['digest']} was not signed",
            hint="build stack ... --sign-key KEY signs it (in its OCI layout too); a bundle carries the signature",
        )
    return result


def _public_key(result: Mapping[str, Any], directory: Path) -> tuple[bytes, PublicKey]:
    path = Path(result["signature"].get("public-key") or directory / PUBLIC_KEY)
    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{display_path(path)}: the public key of the build's signature is missing") from None
    return pem, load_public_key(pem, source=str(path))


def _tag(result: Mapping[str, Any]) -> str:
    """The immutable `<target>-<lock checksum>` tag: the image's ref name in the bundle's layout."""
    return str(result["image"]["tags"][1]).rpartition(":")[2]


def _image(result: Mapping[str, Any], http: HttpClient, scratch: Path, progress: Progress) -> Resolved:
    """The built image with its .sig and .att images, in an OCI layout (copied there from the registry
    when it was pushed)."""
    from builder.prove import image_argument

    image = result["image"]
    ref = image_argument(dict(result), insecure=False)
    resolved = resolve(ref, http)
    if resolved.digest != image["digest"]:
        raise CheckFailed(f"{ref.text} is now {resolved.digest}, not the {image['digest']} result.json records")
    if ref.layout is not None:
        return resolved
    progress(f"copying {resolved.ref.at(resolved.digest)} with its signatures into the bundle")
    scratch.mkdir(parents=True)
    (scratch / "oci-layout").write_bytes(OCI_LAYOUT_FILE)
    (scratch / "index.json").write_text('{"schemaVersion": 2, "manifests": []}\n')
    layout = LayoutStore(scratch)
    hex_ = resolved.digest.removeprefix("sha256:")
    copy_manifest(resolved.store, layout, resolved.digest, _tag(result), ref.text)
    for suffix in ("sig", "att"):
        if resolved.store.manifest(f"sha256-{hex_}.{suffix}") is not None:
            copy_manifest(resolved.store, layout, f"sha256-{hex_}.{suffix}", f"sha256-{hex_}.{suffix}", ref.text)
    return resolve(parse_image(f"oci:{scratch}@{resolved.digest}"), http)


def _layout_members(resolved: Resolved, result: Mapping[str, Any], members: dict[str, Source]) -> int:
    """The image, its signatures and attestations as `cosign save` lays them out; the image's bytes."""
    store = resolved.store
    assert isinstance(store, LayoutStore)
    hex_ = resolved.digest.removeprefix("sha256:")
    image = _manifest_members(store, resolved.digest, members)
    signatures = _manifest_members(store, f"sha256-{hex_}.sig", members)
    attestations = (
        _manifest_members(store, f"sha256-{hex_}.att", members)
        if store.manifest(f"sha256-{hex_}.att") is not None
        else None
    )
    members[f"{LAYOUT}/oci-layout"] = OCI_LAYOUT_FILE
    members[f"{LAYOUT}/index.json"] = layout_index(image, _tag(result), signatures, attestations)
    blobs = referenced_blobs(json.loads(store.blob(image.digest)))
    return image.size + sum(blob.size for blob in blobs)


def _manifest_members(store: LayoutStore, reference: str, members: dict[str, Source]) -> Descriptor:
    data, descriptor = read_manifest(store, reference, f"oci:{store.path}")
    members[blob_name(descriptor.digest)] = data
    for blob in referenced_blobs(json.loads(data)):
        store.blob(blob.digest)  # present and matching its digest, or a failed check naming it
        members[blob_name(blob.digest)] = store.path / "blobs" / "sha256" / blob.digest.removeprefix("sha256:")
    return descriptor


def _proof(resolved: Resolved, key: PublicKey, lock: Lock, key_path: Path) -> list[Mapping[str, Any]]:
    """The image's verified attestation statements; a bundle is only made of an image that verifies."""
    checks = verify(resolved, key, ["sbom", "provenance"], LockedContent.of(lock))
    failed = [check.line() for check in checks if not check.ok]
    if failed:
        raise CheckFailed(f"{resolved.ref.at(resolved.digest)} does not verify with {key_path}", hint="; ".join(failed))
    return attested(resolved, key)[1]


def _sbom_members(result: Mapping[str, Any], statements: list[Mapping[str, Any]], members: dict[str, Source]) -> None:
    """The SBOM files build stack wrote, each the very document the image is attested with."""
    kinds = {"spdx": dsse.SPDX, "cyclonedx": dsse.CYCLONEDX}
    for kind, name in SBOMS.items():
        path = Path(result["sbom"]["paths"][kind])
        try:
            document = json.loads(path.read_bytes())
        except (OSError, ValueError) as error:
            raise UsageError(f"{display_path(path)}: the image's SBOM cannot be read ({error})") from None
        attested_documents = [s.get("predicate") for s in statements if s.get("predicateType") == kinds[kind]]
        if document not in attested_documents:
            raise CheckFailed(f"{display_path(path)} is not the SBOM the image is attested with")
        members[name] = path


def _wheel_members(
    lock: Lock,
    result: Mapping[str, Any],
    provenance: Mapping[str, Any],
    cache_dir: Path,
    http: HttpClient,
    scratch: Path,
    progress: Progress,
) -> dict[str, Source]:
    """The locked wheels (fetched from the index the lock names, checked against its hashes) and the
    built wheels (from the wheel cache, checked against the signed provenance)."""
    from builder.build.wheelcache import WheelCache

    locked = locked_wheels(lock.pylock, lock.image.platform)
    wheels: dict[str, Source] = {}
    hashes: dict[str, str] = {}
    scratch.mkdir(parents=True, exist_ok=True)
    for requirement in locked_files(lock.pylock, lock.image.platform):
        name = wheel_filename(requirement.url)
        progress(f"fetching {name}")
        body = http.get(requirement.url).body
        path = scratch / name
        path.write_bytes(body)
        wheels[f"{WHEELS}/{name}"], hashes[name] = path, describe(name, body).sha256
    cache = WheelCache(cache_dir)
    for recipe, entry in sorted((result.get("wheel_cache") or {}).items()):
        cached = cache.get(entry["key"])
        if cached is None:
            raise UsageError(
                f"the wheel cache at {display_path(cache.root)} no longer holds {recipe}'s wheels ({entry['key']})",
                hint="name the cache the build used with --cache-dir",
            )
        for wheel in cached.wheels:
            wheels[f"{WHEELS}/{wheel.name}"], hashes[wheel.name] = wheel, cached.sha256[wheel.name]
    problems = wheel_problems(hashes, locked, built_wheels(provenance))
    if problems:
        raise CheckFailed(f"the wheels do not match the lock and the signed provenance: {'; '.join(problems)}")
    return wheels
