"""`build bundle verify`: everything a bundle holds, checked offline against a public key.

Each member is bound to what the key signed: the layout's blobs to the signed image digest (by
content address), the SBOMs and smoke.json to the attestations, the lock to the signed provenance
(image-lock checksum) and the image's lock label, the locked wheels to the lock's hashes and the
built wheels to the provenance's byproducts. manifest.json's checksums name the member at fault.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.bundle.layout import (
    LAYOUT,
    MANIFEST,
    PUBLIC_KEY,
    SBOMS,
    SMOKE,
    WHEELS,
    BundleManifest,
    blob_digest,
    blob_name,
    built_wheels,
    lock_member,
    locked_wheels,
    parse_manifest,
    referenced_blobs,
    wheel_problems,
)
from builder.bundle.tarball import Unpacked, unpack
from builder.errors import BuilderError, CheckFailed, UsageError
from builder.lock.model import Lock
from builder.sign import dsse
from builder.sign.encoding import sha256_digest
from builder.sign.keys import PublicKey, load_public_key, public_key_pem
from builder.upstream.images import COSIGN_KIND, KINDS, REF_NAME, LayoutStore, Resolved, parse_image
from builder.verify import SMOKE as SMOKE_PREDICATE
from builder.verify import Check, LockedContent, attested, image_labels, verify


@dataclass(frozen=True)
class BundleVerdict:
    bundle: Path
    digest: str | None
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)


def verify_bundle(bundle: Path, key: PublicKey) -> BundleVerdict:
    """Every check of the bundle; it passes when every one is ok."""
    if not bundle.is_file():
        raise UsageError(f"{bundle}: no such file")
    with tempfile.TemporaryDirectory(prefix="builder-bundle-") as scratch:
        checks, manifest = verify_unpacked(unpack(bundle, Path(scratch)), key)
    return BundleVerdict(bundle, manifest.digest if manifest else None, checks)


def verify_unpacked(unpacked: Unpacked, key: PublicKey) -> tuple[list[Check], BundleManifest | None]:
    """Every check of an unpacked bundle (members named as in the tar), and its manifest if readable."""
    files, manifest = file_check(unpacked)
    checks = [files]
    if manifest is not None:
        checks += _content_checks(unpacked, manifest, key)
    inside = f"{unpacked.directory}/"
    return [Check(c.name, c.ok, c.detail.replace(inside, "")) for c in checks], manifest


def file_check(unpacked: Unpacked) -> tuple[Check, BundleManifest | None]:
    """Every member listed in manifest.json with its sha256, and no other; every layout blob holding
    what its name says. The manifest, when it can be read."""
    problems = list(unpacked.problems)
    if unpacked.manifest is None:
        return Check("files", False, "; ".join([*problems, f"{MANIFEST}: missing (it must be the first member)"])), None
    try:
        manifest = parse_manifest(unpacked.manifest)
    except CheckFailed as error:
        return Check("files", False, "; ".join([*problems, error.message])), None
    listed = {member.name: member for member in manifest.members}
    for name, member in sorted(listed.items()):
        found = unpacked.members.get(name)
        if found is None:
            problems.append(f"{name}: missing from the bundle")
        elif (found.size, found.sha256) != (member.size, member.sha256):
            problems.append(f"{name}: sha256 {found.sha256} ({found.size} bytes), {MANIFEST} lists {member.sha256}")
    problems += [f"{name}: not listed in {MANIFEST}" for name in sorted(set(unpacked.members) - set(listed))]
    for name, member in sorted(unpacked.members.items()):
        claimed = blob_digest(name)
        if claimed is not None and claimed != f"sha256:{member.sha256}":
            problems.append(f"{name}: its content does not match its digest")
    if problems:
        return Check("files", False, "; ".join(dict.fromkeys(problems))), manifest
    return Check("files", True, f"{len(listed)} members match {MANIFEST}"), manifest


def _content_checks(unpacked: Unpacked, manifest: BundleManifest, key: PublicKey) -> list[Check]:
    checks = [_key_check(unpacked, key)]
    resolved, problem = _image(unpacked, manifest)
    if resolved is None:
        return [*checks, Check("image", False, problem)]
    lock = _bundled_lock(unpacked, manifest)
    locked = LockedContent.of(lock) if isinstance(lock, Lock) else None
    checks += _guarded("signature", lambda: verify(resolved, key, ["sbom", "provenance"], locked))
    checks.append(_blobs_check(resolved))
    statements = _guarded_value(lambda: attested(resolved, key)[1]) or []
    provenances = [s.get("predicate") or {} for s in statements if s.get("predicateType") == dsse.SLSA_PROVENANCE_V1]
    if isinstance(lock, Lock):
        checks.append(_lock_check(lock, resolved, provenances, manifest))
        checks.append(_wheel_check(unpacked, lock, provenances))
    else:
        checks.append(lock)
    checks.append(_sbom_check(unpacked, statements))
    if SMOKE in unpacked.members:
        checks.append(_smoke_check(unpacked, statements))
    return checks


def _guarded(name: str, run: Callable[[], list[Check]]) -> list[Check]:
    try:
        return run()
    except BuilderError as error:
        return [Check(name, False, error.message)]


def _guarded_value(run: Callable[[], Any]) -> Any:
    try:
        return run()
    except BuilderError:
        return None  # the guarded check that ran first has said what is wrong


def _key_check(unpacked: Unpacked, key: PublicKey) -> Check:
    if PUBLIC_KEY not in unpacked.members:
        return Check("key", False, f"{PUBLIC_KEY}: missing from the bundle")
    try:
        carried = load_public_key(unpacked.path(PUBLIC_KEY).read_bytes(), source=PUBLIC_KEY)
    except BuilderError as error:
        return Check("key", False, error.message)
    if public_key_pem(carried) != public_key_pem(key):
        return Check("key", False, f"{PUBLIC_KEY}: the bundle carries another key than the one given")
    return Check("key", True, f"{PUBLIC_KEY} is the key given")


def _image(unpacked: Unpacked, manifest: BundleManifest) -> tuple[Resolved | None, str]:
    """The image the manifest names, in the bundle's layout, where its index says cosign save puts it."""
    try:
        index = json.loads(unpacked.path(f"{LAYOUT}/index.json").read_bytes())
        entries = [e for e in index["manifests"] if (e.get("annotations") or {}).get(COSIGN_KIND) == KINDS["image"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        return None, f"{LAYOUT}/index.json is not an image index: {error}"
    found = [(e.get("digest"), (e.get("annotations") or {}).get(REF_NAME)) for e in entries]
    if found != [(manifest.digest, manifest.tag)]:
        return None, f"{LAYOUT}/index.json lists {found or 'no image'}, {MANIFEST} names {manifest.digest}"
    data_path = unpacked.path(blob_name(manifest.digest))
    try:
        data = data_path.read_bytes()
    except OSError:
        return None, f"{blob_name(manifest.digest)}: missing (the image's manifest)"
    if sha256_digest(data) != manifest.digest:
        return None, f"{blob_name(manifest.digest)}: its content does not match its digest"
    ref = parse_image(f"oci:{unpacked.path(LAYOUT)}@{manifest.digest}")
    media_type = str(json.loads(data).get("mediaType") or "application/vnd.oci.image.manifest.v1+json")
    return Resolved(ref, LayoutStore(unpacked.path(LAYOUT)), manifest.digest, data, media_type), ""


def _blobs_check(resolved: Resolved) -> Check:
    """Every blob of the image, its signatures and attestations is in the bundle."""
    store = resolved.store
    assert isinstance(store, LayoutStore)
    missing = []
    for tag, digest in store.manifests_by_name():
        found = store.manifest(digest)
        if found is None:
            missing.append(f"{blob_name(digest)} ({tag})")
            continue
        for blob in referenced_blobs(json.loads(found[0])):
            if not (store.path / "blobs" / "sha256" / blob.digest.removeprefix("sha256:")).is_file():
                missing.append(f"{blob_name(blob.digest)} ({tag})")
    if missing:
        return Check("blobs", False, f"missing: {', '.join(missing)}")
    return Check("blobs", True, "every blob of the image, its signatures and attestations is there")


def _bundled_lock(unpacked: Unpacked, manifest: BundleManifest) -> Lock | Check:
    """The bundle's lock, read as `build` reads any lock (its own checksums checked)."""
    from builder.lock.model import read_lock
    from builder.lock.paths import lock_paths

    try:
        lock = read_lock(lock_paths(unpacked.path("lock"), manifest.stack, manifest.target))
        LockedContent.of(lock)
    except (BuilderError, ValueError, KeyError, TypeError) as error:
        return Check(
            "lock", False, error.message if isinstance(error, BuilderError) else f"the lock is corrupt: {error}"
        )
    return lock


def _lock_check(
    lock: Lock, resolved: Resolved, provenances: list[Mapping[str, Any]], manifest: BundleManifest
) -> Check:
    """The bundled lock is the one the image names (its label) and the signed provenance names (the
    image lock's own checksum, which covers the pylocks' sha256)."""
    label = image_labels(resolved).get("builder.lock-checksum")
    signed = sorted({str(_internal(p).get("imageLockChecksum")) for p in provenances})
    where = lock_member(manifest.stack, manifest.target, "image-lock.json")
    if label != lock.checksum:
        return Check("lock", False, f"{where}: lock {lock.checksum}, the image's label names {label}")
    if lock.image.checksum not in signed:
        return Check("lock", False, f"{where}: checksum {lock.image.checksum}, the signed provenance names {signed}")
    if manifest.lock_checksum != lock.checksum:
        return Check("lock", False, f"{MANIFEST} names lock {manifest.lock_checksum}, the bundle holds {lock.checksum}")
    return Check("lock", True, f"lock {lock.checksum}: the image's label and the signed provenance name it")


def _internal(provenance: Mapping[str, Any]) -> Mapping[str, Any]:
    parameters = (provenance.get("buildDefinition") or {}).get("internalParameters") or {}
    return parameters if isinstance(parameters, dict) else {}


def _sbom_check(unpacked: Unpacked, statements: list[Mapping[str, Any]]) -> Check:
    kinds = {"spdx": dsse.SPDX, "cyclonedx": dsse.CYCLONEDX}
    problems = []
    for kind, name in SBOMS.items():
        attested_documents = [s.get("predicate") for s in statements if s.get("predicateType") == kinds[kind]]
        try:
            document = json.loads(unpacked.path(name).read_bytes())
        except (OSError, ValueError):
            problems.append(f"{name}: missing or not JSON")
            continue
        if document not in attested_documents:
            problems.append(f"{name}: not the SBOM the image is attested with")
    if problems:
        return Check("sbom-files", False, "; ".join(problems))
    return Check("sbom-files", True, f"{', '.join(SBOMS.values())} are the attested SBOMs")


def _wheel_check(unpacked: Unpacked, lock: Lock, provenances: list[Mapping[str, Any]]) -> Check:
    try:
        locked = locked_wheels(lock.pylock, lock.image.platform)
    except BuilderError as error:
        return Check("wheels", False, f"the lock's wheels cannot be read: {error.message}")
    built = built_wheels(provenances[-1]) if provenances else {}
    found = {
        name.removeprefix(f"{WHEELS}/"): member.sha256
        for name, member in unpacked.members.items()
        if name.startswith(f"{WHEELS}/")
    }
    problems = wheel_problems(found, locked, built)
    if problems:
        return Check("wheels", False, "; ".join(problems))
    return Check("wheels", True, f"{len(locked)} locked and {len(built)} built wheel(s), hashes as locked and signed")


def _smoke_check(unpacked: Unpacked, statements: list[Mapping[str, Any]]) -> Check:
    reports = [s.get("predicate") for s in statements if s.get("predicateType") == SMOKE_PREDICATE]
    try:
        report = json.loads(unpacked.path(SMOKE).read_bytes())
    except ValueError:
        return Check("smoke-file", False, f"{SMOKE}: not JSON")
    if report not in reports:
        return Check("smoke-file", False, f"{SMOKE}: not the smoke result the image is attested with")
    result = (report.get("summary") or {}).get("result", "no result")
    return Check("smoke-file", True, f"{SMOKE} is the attested smoke result ({result})")
