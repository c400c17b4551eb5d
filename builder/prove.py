"""What `build stack` adds to an image it built: its SBOMs (always), and with a signing key its
cosign signature and attestations (both SBOMs and the SLSA provenance) beside the pushed image.
The IO edge that joins builder.sbom and builder.sign; result.json records what was written."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from builder.errors import CheckFailed
from builder.lock.model import Lock
from builder.plan.stages import Plan
from builder.sign.keys import PrivateKey
from builder.upstream.http import HttpClient
from builder.upstream.images import parse_image

if TYPE_CHECKING:
    from builder.sbom.layered import AppStage

Progress = Callable[[str], None]

ATTESTED = ("spdxjson", "cyclonedx", "slsaprovenance1")  # cosign --type names, in the order written


def image_argument(result: dict[str, Any], insecure: bool) -> Any:
    """The built image as `build sbom`/`sign` name it: the pushed reference, else its OCI layout by digest."""
    image = result["image"]
    if image["stored"] == "registry":
        return replace(parse_image(image["reference"]), insecure=insecure)
    return parse_image(f"oci:{image['oci-layout']}@{image['digest']}")


def prove(
    root: Path,
    result: dict[str, Any],
    plan: Plan,
    lock: Lock,
    key: PrivateKey | None,
    http: HttpClient,
    progress: Progress,
    *,
    insecure: bool = False,
    previous: dict[str, Any] | None = None,
    app: AppStage | None = None,
    app_packages: Callable[[], int] | None = None,
) -> dict[str, Any]:
    """Write the image's SBOMs to out/<stack>/<target>/sbom/ and its SLSA provenance beside them and,
    with `key`, sign and attest the image (its public key written beside result.json as cosign.pub,
    for a bundle to carry); returns `result` with `sbom`, `provenance`, `signature` and
    `attestations` added. What `previous` (the last result.json) recorded for the same digest is
    reused where it still holds: SBOMs made under the same key whose files are unchanged, a
    signature and attestations by the same key that are still beside the image. With `app` (what
    the app stage adds) a new image whose other layers syft has scanned before is not scanned again
    (builder.sbom.layered); `app_packages` counts what syft finds in the app files alone."""
    from builder.build.fastpath import reusable_sbom, sbom_key, site_files

    ref = image_argument(result, insecure)
    digest = result["image"]["digest"]
    key_for_sboms = sbom_key(digest, plan.lock_checksum, site_files(root))
    reused = reusable_sbom(previous, key_for_sboms) if previous is not None else None
    if reused is not None:
        progress(f"SBOMs of {digest[:19]}...: unchanged since they were made, kept ({reused['paths']['spdx']})")
        result = {**result, "sbom": reused}
    else:
        from builder.sbom.make import without_gc

        with without_gc():
            made = _make_sboms(root, result, ref, plan, lock, progress, http, app, app_packages)
        result = {**result, "sbom": {**made, "key": key_for_sboms}}
    result = {**result, "provenance": _write_provenance(Path(result["context"]).parent, lock, result)}
    if key is None:
        return result
    return {**result, **_sign_and_attest(result, ref, key, http, progress, previous)}


def _make_sboms(
    root: Path,
    result: dict[str, Any],
    ref: Any,
    plan: Plan,
    lock: Lock,
    progress: Progress,
    http: HttpClient,
    app: AppStage | None,
    app_packages: Callable[[], int] | None,
) -> dict[str, Any]:
    """The SBOMs of the built image: from the recorded scan of its lower layers where that holds
    (see builder.sbom.layered), else from a full syft scan, recorded for the next build."""
    from builder.errors import BuilderError
    from builder.sbom import layered
    from builder.sbom.contents import lock_contents
    from builder.sbom.make import scan_image, scan_name, syft_config_bytes, write_sboms
    from builder.sbom.policy import load_site
    from builder.sbom.syft import syft_binary
    from builder.upstream.images import open_store

    started = time.monotonic()
    directory = Path(result["context"]).parent
    digest = result["image"]["digest"]
    site = load_site(root)
    contents = lock_contents(plan, lock)
    name = scan_name(ref, contents)
    config = syft_config_bytes(site)
    image, scan, expected, scanned = None, None, None, "full"
    store = open_store(ref, http) if app is not None else None
    if app is not None and store is not None:
        count_app_packages = app_packages or (lambda: layered.app_packages(app, syft_binary(), config))
        try:
            image = layered.read_image(store, digest)
            scan, record = layered.reusable_scan(store, image, app, config, count_app_packages)
            scanned = record.digest
            progress(
                f"SBOMs of {digest[:19]}...: its layers below the app stage are those syft scanned in "
                f"{record.digest[:19]}... and syft finds no package in the app files: that scan is used, no rescan"
            )
        except (layered.NotReusable, BuilderError) as why:
            progress(f"SBOMs of {digest[:19]}...: a full scan ({why})")
    if scan is None:
        with ThreadPoolExecutor(1) as pool:  # the layers are read for the record while syft scans
            layers = pool.submit(layered.scan_record, store, image, app) if store and image and app else None
            scan, expected = scan_image(ref, site=site, name=name, platform=contents.platform, progress=progress)
            if layers is not None and image is not None and app is not None:
                try:
                    count, paths = layers.result()
                    layered.save_record(layered.make_record(image, count, paths, scan, app), config)
                except (layered.NotReusable, BuilderError, OSError) as why:
                    progress(f"the scan of {digest[:19]}... is not kept for the next build ({why})")
    sboms = write_sboms(
        scan, ref, directory / "sbom", contents=contents, site=site, name=name, expected_digest=expected
    )
    if sboms.digest != digest:
        raise CheckFailed(f"syft scanned {sboms.digest} where the build made {digest}")
    return {**sboms.to_json(), "scanned": scanned, "seconds": round(time.monotonic() - started, 2)}


def _write_provenance(directory: Path, lock: Lock, result: dict[str, Any]) -> dict[str, str]:
    """The SLSA v1 provenance predicate, written beside the SBOMs whether or not builder signs: a
    keyless CI attests the same file with `cosign attest --type slsaprovenance1`."""
    from builder.fsutil import write_atomic
    from builder.sign.dsse import SLSA_PROVENANCE_V1
    from builder.sign.provenance import provenance

    path = directory / "provenance.json"
    write_atomic(path, json.dumps(provenance(lock, result), indent=2, sort_keys=True) + "\n")
    return {"path": str(path), "predicateType": SLSA_PROVENANCE_V1}


def _sign_and_attest(
    result: dict[str, Any],
    ref: Any,
    key: PrivateKey,
    http: HttpClient,
    progress: Progress,
    previous: dict[str, Any] | None,
) -> dict[str, Any]:
    from builder.build.fastpath import reusable_signature
    from builder.fsutil import write_atomic_bytes
    from builder.sign.attach import attest, sign
    from builder.sign.dsse import predicate_type
    from builder.sign.keys import public_key_hint, public_key_pem
    from builder.upstream.images import resolve

    resolved = resolve(ref, http)
    if resolved.digest != result["image"]["digest"]:
        raise CheckFailed(f"{ref.text} is now {resolved.digest}, not the {result['image']['digest']} just built")
    public = Path(result["context"]).parent / "cosign.pub"
    write_atomic_bytes(public, public_key_pem(key.public_key()))
    hint = public_key_hint(key.public_key())
    if previous is not None and reusable_signature(previous, resolved.digest, hint, resolved.store):
        progress(f"{resolved.ref.at(resolved.digest)}: its signature and attestations by this key are still there")
        return {
            "signature": {**previous["signature"], "public-key": str(public), "added": False},
            "attestations": [{**attestation, "added": False} for attestation in previous["attestations"]],
        }
    spdx, cyclonedx = Path(result["sbom"]["paths"]["spdx"]), Path(result["sbom"]["paths"]["cyclonedx"])
    progress(f"signing {resolved.ref.at(resolved.digest)}")
    signed = sign(resolved, key, "simple")
    predicates = {
        "spdxjson": json.loads(spdx.read_text()),
        "cyclonedx": json.loads(cyclonedx.read_text()),
        "slsaprovenance1": json.loads(Path(result["provenance"]["path"]).read_text()),
    }
    attestations = []
    for kind in ATTESTED:
        uri = predicate_type(kind)
        progress(f"attesting {kind} for {resolved.digest}")
        attached = attest(resolved, key, uri, predicates[kind])
        attestations.append({"type": kind, "predicateType": uri, **attached.to_json()})
    return {"signature": {**signed.to_json(), "key": hint, "public-key": str(public)}, "attestations": attestations}
