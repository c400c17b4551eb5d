"""The join: syft's SPDX and CycloneDX documents with what the lock says about the image. Pure.

Every package syft found stays. A package syft found that the lock installed gets the lock's facts
(the wheel's URL, sha256 and index; a source build's repository, commit and builder-stage key);
the base images come in as container packages with their digests; what the builder stages used
(locked build requirements, system packages, the devel base) comes in as build-time relations,
never as runtime packages.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, unquote

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from builder import __version__
from builder.sbom.contents import BaseImage, BuildTool, LockContents, LockedWheel, SourceBuilt
from builder.sbom.normalize import copy_of
from builder.sbom.syft import ImageFacts

TOOL_NAME = "builder"
PREFIX = "builder:"
NOASSERTION = "NOASSERTION"

Document = dict[str, Any]


# ---------------------------------------------------------------- names and versions


def same_version(found: str, locked: str, *, public: bool = False) -> bool:
    """PEP 440 equality (2.8 == 2.8.0); with `public`, a local label (+cu126) on either side is ignored."""
    try:
        a, b = Version(found), Version(locked)
    except InvalidVersion:
        return found == locked
    return a == b or (public and a.public == b.public)


def pypi_purl(purl: str) -> tuple[str, str] | None:
    """(canonical name, version) of a `pkg:pypi/NAME@VERSION` purl, else None."""
    match = re.fullmatch(r"pkg:pypi/([^@?#]+)@([^?#]+)(?:[?#].*)?", purl)
    if match is None:
        return None
    return str(canonicalize_name(unquote(match[1]))), unquote(match[2])


def with_qualifier(purl: str, key: str, value: str) -> str:
    """`purl` with one more qualifier (qualifiers sorted by key, as the purl spec asks)."""
    base, hash_sign, subpath = purl.partition("#")
    head, _, query = base.partition("?")
    qualifiers = dict(part.split("=", 1) for part in query.split("&") if "=" in part)
    qualifiers[key] = quote(value, safe=":/")
    text = head + "?" + "&".join(f"{k}={v}" for k, v in sorted(qualifiers.items()))
    return text + (hash_sign + subpath if hash_sign else "")


def oci_purl(name: str, digest: str, arch: str) -> str:
    """The image's own purl: its name and manifest digest (no registry, which a mirror changes)."""
    slug = quote(name.rsplit("/", 1)[-1].lower(), safe="")
    return f"pkg:oci/{slug}@{quote(digest, safe='')}" + (f"?arch={quote(arch, safe='')}" if arch else "")


def _spdx_id(text: str) -> str:
    return "SPDXRef-" + re.sub(r"[^A-Za-z0-9.-]+", "-", text).strip("-")


def tool_id(tool: BuildTool) -> str:
    return f"{tool.stage}-{tool.kind}-{tool.name}"


# ---------------------------------------------------------------- what syft found


def found_python_packages(spdx: Document) -> dict[str, list[str]]:
    """Canonical name -> every version of it syft found (Python packages, from their pypi purls)."""
    found: dict[str, list[str]] = {}
    for package in spdx.get("packages", []):
        for ref in package.get("externalRefs", []):
            parsed = pypi_purl(str(ref.get("referenceLocator", ""))) if ref.get("referenceType") == "purl" else None
            if parsed is not None:
                found.setdefault(parsed[0], []).append(parsed[1])
    return {name: sorted(set(versions)) for name, versions in sorted(found.items())}


def spdx_root_id(spdx: Document) -> str:
    """The package the document DESCRIBES: syft's image package."""
    for relationship in spdx.get("relationships", []):
        if (
            relationship.get("spdxElementId") == "SPDXRef-DOCUMENT"
            and relationship.get("relationshipType") == "DESCRIBES"
        ):
            return str(relationship["relatedSpdxElement"])
    raise ValueError("the SPDX document describes no package")


def image_package_count(spdx: Document) -> int:
    """How many packages syft found in the image (its own image package not counted)."""
    root = spdx_root_id(spdx)
    return sum(1 for package in spdx.get("packages", []) if package.get("SPDXID") != root)


# ---------------------------------------------------------------- SPDX 2.3


def _annotation(created: str, key: str, value: str) -> dict[str, str]:
    return {
        "annotationDate": created,
        "annotationType": "OTHER",
        "annotator": f"Tool: {TOOL_NAME}-{__version__}",
        "comment": f"{PREFIX}{key}={value}",
    }


def _annotate(package: Document, created: str, pairs: Iterable[tuple[str, str | None]]) -> None:
    notes = package.setdefault("annotations", [])
    notes += [_annotation(created, key, value) for key, value in pairs if value is not None]


def _set_purl(package: Document, update: Any) -> None:
    for ref in package.get("externalRefs", []):
        if ref.get("referenceType") == "purl":
            ref["referenceLocator"] = update(ref["referenceLocator"])


def _add_checksum(package: Document, sha256: str) -> None:
    checksums = package.setdefault("checksums", [])
    if {"algorithm": "SHA256", "checksumValue": sha256} not in checksums:
        checksums.append({"algorithm": "SHA256", "checksumValue": sha256})


def _matches(found: tuple[str, str] | None, name: str, version: str, *, public: bool = False) -> bool:
    if found is None:
        return False
    return found[0] == name and same_version(found[1], version, public=public)


def _spdx_pypi(package: Document) -> tuple[str, str] | None:
    for ref in package.get("externalRefs", []):
        if ref.get("referenceType") == "purl":
            parsed = pypi_purl(str(ref.get("referenceLocator", "")))
            if parsed is not None:
                return parsed
    return None


def _blank_package(spdx_id: str, name: str, version: str | None) -> Document:
    package: Document = {"SPDXID": spdx_id, "name": name}
    if version:
        package["versionInfo"] = version
    package.update(
        supplier=NOASSERTION,
        downloadLocation=NOASSERTION,
        filesAnalyzed=False,
        licenseConcluded=NOASSERTION,
        licenseDeclared=NOASSERTION,
        copyrightText=NOASSERTION,
    )
    return package


def _purl_ref(purl: str) -> dict[str, str]:
    return {"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": purl}


def _relationship(source: str, kind: str, target: str) -> dict[str, str]:
    return {"spdxElementId": source, "relationshipType": kind, "relatedSpdxElement": target}


def _spdx_wheel(package: Document, wheel: LockedWheel, created: str) -> None:
    package["downloadLocation"] = wheel.url
    _add_checksum(package, wheel.sha256)
    if wheel.index:
        index = wheel.index
        _set_purl(package, lambda purl: with_qualifier(purl, "repository_url", index))
    _annotate(package, created, [("locked", "wheel"), ("index", wheel.index), ("recipe", wheel.recipe)])


def _spdx_source(package: Document, source: SourceBuilt, created: str) -> None:
    package["downloadLocation"] = source.download_location
    _annotate(
        package,
        created,
        [
            ("locked", "source"), ("repository", source.repository), ("commit", source.commit), ("ref", source.ref),
            ("stage", source.stage), ("stage-key", source.stage_key),
        ],
    )  # fmt: skip


def _spdx_base(base: BaseImage, created: str) -> Document:
    package = _blank_package(_spdx_id(f"builder-base-{base.role}"), base.repository, base.tag)
    package["checksums"] = [{"algorithm": "SHA256", "checksumValue": base.digest.removeprefix("sha256:")}]
    package["primaryPackagePurpose"] = "CONTAINER"
    package["externalRefs"] = [_purl_ref(base.purl)]
    _annotate(
        package,
        created,
        [
            ("base-image", base.role), ("digest", base.digest), ("index-digest", base.index_digest),
            ("platform", base.platform), ("build-time", "true" if base.role == "devel" else None),
        ],
    )  # fmt: skip
    return package


def _spdx_tool(tool: BuildTool, created: str) -> Document:
    package = _blank_package(_spdx_id(f"builder-tool-{tool_id(tool)}"), tool.name, tool.version)
    if tool.url:
        package["downloadLocation"] = tool.url
    if tool.sha256:
        package["checksums"] = [{"algorithm": "SHA256", "checksumValue": tool.sha256}]
    if tool.kind == "python" and tool.version:
        package["externalRefs"] = [_purl_ref(f"pkg:pypi/{tool.name}@{quote(tool.version, safe='')}")]
    _annotate(
        package,
        created,
        [("build-time", "true"), ("kind", tool.kind), ("stage", tool.stage), ("stage-key", tool.stage_key)],
    )
    return package


def join_spdx(
    spdx: Document,
    contents: LockContents | None,
    facts: ImageFacts,
    *,
    created: str,
    name: str,
    organization: str | None = None,
) -> Document:
    """syft's SPDX document, bound to the image's digest and joined with the lock (when given)."""
    doc = copy_of(spdx)
    root_id = spdx_root_id(doc)
    creators = doc.setdefault("creationInfo", {}).setdefault("creators", [])
    creators += [f"Tool: {TOOL_NAME}-{__version__}"] + ([f"Organization: {organization}"] if organization else [])
    root = next(p for p in doc.get("packages", []) if p.get("SPDXID") == root_id)
    root["checksums"] = [{"algorithm": "SHA256", "checksumValue": facts.manifest_digest.removeprefix("sha256:")}]
    _set_purl(root, lambda _: oci_purl(name, facts.manifest_digest, facts.architecture))
    _annotate(root, created, [("manifest-digest", facts.manifest_digest), ("image-id", facts.image_id or None)])
    if contents is None:
        return doc
    _annotate(
        root,
        created,
        [("stack", contents.stack), ("target", contents.target), ("lock-checksum", contents.lock_checksum)],
    )
    relationships = doc.setdefault("relationships", [])
    built_by_stage: dict[str, list[str]] = {}
    for package in doc.get("packages", []):
        found = _spdx_pypi(package)
        for wheel in contents.wheels:
            if _matches(found, wheel.name, wheel.version):
                _spdx_wheel(package, wheel, created)
        for source in contents.sources:
            if _matches(found, source.name, source.version, public=True):
                _spdx_source(package, source, created)
                built_by_stage.setdefault(source.stage, []).append(str(package["SPDXID"]))
    for base in contents.bases:
        package = _spdx_base(base, created)
        doc["packages"].append(package)
        if base.role == "runtime":
            relationships.append(_relationship(root_id, "DESCENDANT_OF", package["SPDXID"]))
        else:
            relationships.append(_relationship(package["SPDXID"], "BUILD_DEPENDENCY_OF", root_id))
    for tool in contents.tools:
        package = _spdx_tool(tool, created)
        doc["packages"].append(package)
        kind = "BUILD_DEPENDENCY_OF" if tool.kind == "python" else "BUILD_TOOL_OF"
        for target in [root_id, *built_by_stage.get(tool.stage, [])]:
            relationships.append(_relationship(package["SPDXID"], kind, target))
    return doc


# ---------------------------------------------------------------- CycloneDX 1.6


def _properties(component: Document, pairs: Iterable[tuple[str, str | None]]) -> None:
    properties = component.setdefault("properties", [])
    properties += [{"name": f"{PREFIX}{key}", "value": value} for key, value in pairs if value is not None]


def _hashes(sha256: str) -> list[dict[str, str]]:
    return [{"alg": "SHA-256", "content": sha256}]


def _cdx_wheel(component: Document, wheel: LockedWheel) -> None:
    component["hashes"] = _hashes(wheel.sha256)
    if wheel.index and "purl" in component:
        component["purl"] = with_qualifier(component["purl"], "repository_url", wheel.index)
    component.setdefault("externalReferences", []).append(
        {"type": "distribution", "url": wheel.url, "hashes": _hashes(wheel.sha256)}
    )
    _properties(component, [("locked", "wheel"), ("index", wheel.index), ("recipe", wheel.recipe)])


def _cdx_source(component: Document, source: SourceBuilt) -> None:
    component.setdefault("externalReferences", []).append(
        {"type": "vcs", "url": source.download_location, "comment": f"commit {source.commit} (ref {source.ref})"}
    )
    component.setdefault("pedigree", {}).setdefault("commits", []).append(
        {"uid": source.commit, "url": source.repository}
    )
    _properties(
        component,
        [
            ("locked", "source"), ("repository", source.repository), ("commit", source.commit), ("ref", source.ref),
            ("stage", source.stage), ("stage-key", source.stage_key),
        ],
    )  # fmt: skip


def _cdx_base(base: BaseImage) -> Document:
    component: Document = {
        "bom-ref": f"{PREFIX}base-image:{base.role}",
        "type": "container",
        "name": base.repository,
        "version": base.tag,
        "hashes": _hashes(base.digest.removeprefix("sha256:")),
        "purl": base.purl,
    }
    if base.role == "devel":
        component["scope"] = "excluded"
    _properties(
        component,
        [
            ("base-image", base.role), ("digest", base.digest), ("index-digest", base.index_digest),
            ("platform", base.platform), ("build-time", "true" if base.role == "devel" else None),
        ],
    )  # fmt: skip
    return component


def _cdx_tool(tool: BuildTool) -> Document:
    component: Document = {
        "bom-ref": f"{PREFIX}build-tool:{tool_id(tool)}",
        "type": "library" if tool.kind == "python" else "application",
        "name": tool.name,
        "scope": "excluded",
    }
    if tool.version:
        component["version"] = tool.version
    if tool.sha256:
        component["hashes"] = _hashes(tool.sha256)
    if tool.kind == "python" and tool.version:
        component["purl"] = f"pkg:pypi/{tool.name}@{quote(tool.version, safe='')}"
    if tool.url:
        component["externalReferences"] = [
            {"type": "distribution", "url": tool.url, **({"hashes": _hashes(tool.sha256)} if tool.sha256 else {})}
        ]
    _properties(
        component,
        [("build-time", "true"), ("kind", tool.kind), ("stage", tool.stage), ("stage-key", tool.stage_key)],
    )
    return component


def _rename_ref(doc: Document, old: str, new: str) -> None:
    doc["metadata"]["component"]["bom-ref"] = new
    for dependency in doc.get("dependencies", []) if old else []:
        if dependency.get("ref") == old:
            dependency["ref"] = new
        if old in dependency.get("dependsOn", []):
            dependency["dependsOn"] = [new if ref == old else ref for ref in dependency["dependsOn"]]


def join_cyclonedx(
    bom: Document,
    contents: LockContents | None,
    facts: ImageFacts,
    *,
    name: str,
    organization: str | None = None,
) -> Document:
    """syft's CycloneDX BOM, bound to the image's digest and joined with the lock (when given)."""
    doc = copy_of(bom)
    metadata = doc.setdefault("metadata", {})
    tools = metadata.setdefault("tools", {}).setdefault("components", [])
    tools.append({"type": "application", "name": TOOL_NAME, "version": __version__})
    if organization:
        metadata["supplier"] = {"name": organization}
    root = metadata.setdefault("component", {"type": "container", "name": name})
    _rename_ref(doc, str(root.get("bom-ref", "")), f"{PREFIX}image")  # syft's is a hash of its own source ID
    root["hashes"] = _hashes(facts.manifest_digest.removeprefix("sha256:"))
    root["purl"] = oci_purl(name, facts.manifest_digest, facts.architecture)
    pairs: list[tuple[str, str | None]] = [
        ("manifest-digest", facts.manifest_digest),
        ("image-id", facts.image_id or None),
    ]
    if contents is not None:
        pairs += [("stack", contents.stack), ("target", contents.target), ("lock-checksum", contents.lock_checksum)]
    _properties(metadata, pairs)
    if contents is None:
        return doc
    components = doc.setdefault("components", [])
    for component in components:
        found = pypi_purl(str(component.get("purl", "")))
        for wheel in contents.wheels:
            if _matches(found, wheel.name, wheel.version):
                _cdx_wheel(component, wheel)
        for source in contents.sources:
            if _matches(found, source.name, source.version, public=True):
                _cdx_source(component, source)
    components += [_cdx_base(base) for base in contents.bases]
    components += [_cdx_tool(tool) for tool in contents.tools]
    return doc
