"""`build verify`: what an image proves about itself, checked offline against a public key.

- a signature by the key over this exact manifest digest (cosign's `.sig` format, or a Sigstore
  bundle referrer);
- each required attestation (`sbom`, `provenance`, `smoke`) signed by the key with this digest as
  its subject;
- when the lock the image's `builder.lock-checksum` label names is at hand: the SBOM covers every
  package of that lock, and the provenance names that lock.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from packaging.utils import canonicalize_name

from builder.errors import CheckFailed
from builder.sign import bundle, cosign, dsse
from builder.sign.attach import read_attachments
from builder.sign.keys import PublicKey
from builder.sign.oci import LayerVerdict
from builder.upstream.images import Resolved

if TYPE_CHECKING:
    from builder.lock.model import Lock

SMOKE = "https://builder.invalid/attestations/smoke/v1"  # builder's own predicate type (an identifier)
REQUIREMENTS = {
    "sbom": (dsse.SPDX, dsse.CYCLONEDX),
    "provenance": (dsse.SLSA_PROVENANCE_V1,),
    "smoke": (SMOKE,),
}


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok' if self.ok else 'error'}: {self.name}: {self.detail}"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True)
class LockedContent:
    """What the lock at hand says the image holds, and which lock that is."""

    checksum: str
    packages: Mapping[str, str]  # canonical name -> version

    @classmethod
    def of(cls, lock: Lock) -> LockedContent:
        from builder.lock.model import read_toml

        packages = read_toml(lock.pylock).get("packages", [])
        return cls(lock.checksum, {str(canonicalize_name(p["name"])): str(p.get("version")) for p in packages})


def image_labels(resolved: Resolved) -> dict[str, str]:
    """The labels of the image's config (empty for an index or an unreadable config)."""
    try:
        manifest = json.loads(resolved.manifest)
        config = json.loads(resolved.store.blob(manifest["config"]["digest"]))
        labels = (config.get("config") or {}).get("Labels") or {}
    except (ValueError, KeyError, TypeError, CheckFailed):
        return {}  # no labels to go by: the lock is not compared
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}


def verify(
    resolved: Resolved, key: PublicKey, require: Iterable[str], locked: LockedContent | None = None
) -> list[Check]:
    """Every check, passing or not; the image passes when every one is ok."""
    checks = [_signature(resolved, key)]
    verdicts, statements = attested(resolved, key)
    for name in sorted(set(require)):
        check = _required(name, verdicts, statements)
        checks.append(_smoke_passed(check, statements) if name == "smoke" and check.ok else check)
    labels = image_labels(resolved)
    label = labels.get("builder.lock-checksum")
    if locked is not None and label and label == locked.checksum:
        checks += _covers_lock(statements, locked)
    elif locked is not None and label:
        checks.append(
            Check("lock", True, f"the lock at hand is {locked.checksum}, the image names {label}: not compared")
        )
    return checks


def attested(resolved: Resolved, key: PublicKey) -> tuple[list[LayerVerdict], list[Mapping[str, Any]]]:
    """A verdict on each attestation of the image, and the statements of those that `key` signed
    with this digest as their subject."""
    manifest, blobs = read_attachments(resolved, "att")
    verdicts = dsse.verify_attestations(manifest, blobs, key, resolved.digest) if manifest is not None else []
    return verdicts, [v.claims for v in verdicts if v.ok and v.claims is not None]


def _signature(resolved: Resolved, key: PublicKey) -> Check:
    manifest, blobs = read_attachments(resolved, "sig")
    verdicts: list[LayerVerdict] = []
    if manifest is not None:
        verdicts = cosign.verify_signatures(manifest, blobs, key, resolved.digest)
    listed = resolved.store.manifest(bundle.fallback_tag(resolved.digest))
    for digest in bundle.bundle_referrers(listed[0]) if listed else []:
        found = resolved.store.manifest(digest)
        if found is None:
            continue
        layer_blobs = {}
        for layer in json.loads(found[0]).get("layers", []):
            layer_blobs[layer["digest"]] = resolved.store.blob(layer["digest"])
        verdicts.append(bundle.verify_referrer(found[0], layer_blobs, key, resolved.digest))
    good = [v for v in verdicts if v.ok]
    if good:
        return Check("signature", True, f"{len(good)} signature(s) by this key over {resolved.digest}")
    if not verdicts:
        return Check("signature", False, f"no signature of {resolved.digest}")
    reasons = "; ".join(v.line() for v in verdicts)
    return Check("signature", False, f"no signature by this key over {resolved.digest} ({reasons})")


def _required(name: str, verdicts: list[LayerVerdict], statements: list[Mapping[str, Any]]) -> Check:
    wanted = REQUIREMENTS[name]
    if any(s.get("predicateType") in wanted for s in statements):
        kinds = sorted({str(s["predicateType"]) for s in statements if s.get("predicateType") in wanted})
        return Check(name, True, f"attested ({', '.join(kinds)}), signed by this key, subject this digest")
    failing = [v.line() for v in verdicts if not v.ok]
    detail = f"no valid {name} attestation ({' or '.join(wanted)})"
    return Check(name, False, detail + (f": {'; '.join(failing)}" if failing else ""))


def _smoke_passed(check: Check, statements: list[Mapping[str, Any]]) -> Check:
    """A smoke attestation proves the image only when the run it records passed."""
    reports = [s.get("predicate") for s in statements if s.get("predicateType") == SMOKE]
    summaries = [r.get("summary") or {} for r in reports if isinstance(r, dict)]
    if any(summary.get("result") == "pass" for summary in summaries):
        return check
    results = "; ".join(
        f"{summary.get('result', 'no result')} (failed: {', '.join(summary.get('failed_checks') or []) or 'none'})"
        for summary in summaries
    )
    return Check("smoke", False, f"attested, but the smoke run did not pass: {results}")


def sbom_packages(predicate: Mapping[str, Any]) -> dict[str, set[str]]:
    """Canonical name -> versions, from an SPDX 2.x document or a CycloneDX BOM."""
    found: dict[str, set[str]] = {}
    items = predicate.get("packages") or predicate.get("components") or []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and item.get("name"):
            version = str(item.get("versionInfo") or item.get("version") or "")
            found.setdefault(str(canonicalize_name(str(item["name"]))), set()).add(version)
    return found


def _covers_lock(statements: list[Mapping[str, Any]], locked: LockedContent) -> list[Check]:
    checks = []
    for statement in statements:
        kind = statement.get("predicateType")
        predicate = statement.get("predicate")
        if kind in (dsse.SPDX, dsse.CYCLONEDX) and isinstance(predicate, dict):
            found = sbom_packages(predicate)
            missing = [f"{n} {v}" for n, v in sorted(locked.packages.items()) if v not in found.get(n, set())]
            label = "SPDX" if kind == dsse.SPDX else "CycloneDX"
            detail = (
                f"the {label} SBOM lacks locked package(s): {', '.join(missing)}"
                if missing
                else (f"the {label} SBOM covers the {len(locked.packages)} packages of lock {locked.checksum}")
            )
            checks.append(Check("sbom-covers-lock", not missing, detail))
        if kind == dsse.SLSA_PROVENANCE_V1 and isinstance(predicate, dict):
            named = provenance_lock(predicate)
            ok = named == locked.checksum
            detail = f"names lock {named}" + ("" if ok else f", the image is lock {locked.checksum}")
            checks.append(Check("provenance-lock", ok, detail))
    return checks


def provenance_lock(predicate: Mapping[str, Any]) -> str | None:
    """The lock checksum an SLSA v1 provenance of builder's names."""
    try:
        return str(predicate["buildDefinition"]["internalParameters"]["lockChecksum"])
    except (KeyError, TypeError):
        return None


# ---------------------------------------------------------------- keyless (Sigstore), through the cosign CLI

COSIGN_TYPES = {  # what `cosign verify-attestation --type` is given for each requirement
    "sbom": ("spdxjson", "cyclonedx"),
    "provenance": ("slsaprovenance1",),
    "smoke": (SMOKE,),
}


@dataclass(frozen=True)
class Identity:
    """Whose keyless signatures count: cosign's --certificate-* options."""

    identity_regexp: str
    issuer: str
    workflow_repository: str | None = None

    def options(self) -> list[str]:
        options = ["--certificate-identity-regexp", self.identity_regexp, "--certificate-oidc-issuer", self.issuer]
        if self.workflow_repository:
            options += ["--certificate-github-workflow-repository", self.workflow_repository]
        return options

    def text(self) -> str:
        repository = f", repository {self.workflow_repository}" if self.workflow_repository else ""
        return f"identity ~ {self.identity_regexp}, issuer {self.issuer}{repository}"


def keyless_commands(
    cosign: str, pinned: str, require: Iterable[str], identity: Identity
) -> list[tuple[str, list[str]]]:
    """(requirement, argv) for each cosign run a keyless verify makes: the signature first, then one
    `verify-attestation` per predicate type of each requirement (any one of them satisfies it)."""
    commands = [("signature", [cosign, "verify", *identity.options(), pinned])]
    for name in sorted(set(require)):
        for kind in COSIGN_TYPES[name]:
            commands.append((name, [cosign, "verify-attestation", "--type", kind, *identity.options(), pinned]))
    return commands


def keyless_checks(digest: str, outcomes: list[tuple[str, str, bool, str]], identity: Identity) -> list[Check]:
    """Checks from cosign's verdicts, (requirement, type, passed, cosign's last lines) each: a
    requirement passes when any of its types verified."""
    checks = []
    for name in dict.fromkeys(outcome[0] for outcome in outcomes):
        mine = [outcome for outcome in outcomes if outcome[0] == name]
        good = [kind for _, kind, ok, _ in mine if ok]
        if name == "signature":
            detail = f"{'a' if good else 'no'} keyless signature over {digest} ({identity.text()})"
        elif good:
            detail = f"attested ({', '.join(good)}), keyless ({identity.text()}), subject this digest"
        else:
            detail = f"no valid keyless {name} attestation ({' or '.join(kind for _, kind, _, _ in mine)})"
        reasons = "; ".join(f"{kind}: {tail}" for _, kind, ok, tail in mine if not ok and tail)
        if not good and reasons:
            detail += f": {reasons}"
        checks.append(Check(name, bool(good), detail))
    return checks
