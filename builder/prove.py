"""What `build stack` adds to an image it built: its SBOMs (always), and with a signing key its
cosign signature and attestations (both SBOMs and the SLSA provenance) beside the pushed image.
The IO edge that joins builder.sbom and builder.sign; result.json records what was written."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from builder.errors import CheckFailed
from builder.lock.model import Lock
from builder.plan.stages import Plan
from builder.sign.keys import PrivateKey
from builder.upstream.http import HttpClient
from builder.upstream.images import parse_image

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
) -> dict[str, Any]:
    """Write the image's SBOMs to out/<stack>/<target>/sbom/ and, with `key`, sign and attest the
    image (its public key written beside result.json as cosign.pub, for a bundle to carry); returns
    `result` with `sbom`, `signature` and `attestations` added."""
    from builder.sbom.contents import lock_contents
    from builder.sbom.make import make_sboms
    from builder.sbom.policy import load_site

    ref = image_argument(result, insecure)
    directory = Path(result["context"]).parent
    sboms = make_sboms(
        ref, directory / "sbom", contents=lock_contents(plan, lock), site=load_site(root), progress=progress
    )
    if sboms.digest != result["image"]["digest"]:
        raise CheckFailed(f"syft scanned {sboms.digest} where the build made {result['image']['digest']}")
    result = {**result, "sbom": sboms.to_json(), "provenance": _write_provenance(directory, lock, result)}
    if key is None:
        return result
    return {**result, **_sign_and_attest(result, ref, key, http, progress, sboms.spdx.path, sboms.cyclonedx.path)}


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
    spdx: Path,
    cyclonedx: Path,
) -> dict[str, Any]:
    from builder.fsutil import write_atomic_bytes
    from builder.sign.attach import attest, sign
    from builder.sign.dsse import predicate_type
    from builder.sign.keys import public_key_pem
    from builder.upstream.images import resolve

    resolved = resolve(ref, http)
    if resolved.digest != result["image"]["digest"]:
        raise CheckFailed(f"{ref.text} is now {resolved.digest}, not the {result['image']['digest']} just built")
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
    public = Path(result["context"]).parent / "cosign.pub"
    write_atomic_bytes(public, public_key_pem(key.public_key()))
    return {"signature": {**signed.to_json(), "public-key": str(public)}, "attestations": attestations}
