"""Determinism: the four fields syft fills from the clock and a random generator (SPDX
`creationInfo.created` and `documentNamespace`; CycloneDX `serialNumber` and `metadata.timestamp`)
derived from content instead, arrays in a stable order, and one way of writing JSON. Pure."""

from __future__ import annotations

import copy
import hashlib
import json
import re
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

Document = dict[str, Any]

EPOCH = "1970-01-01T00:00:00Z"
_RFC3339 = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.\d+)?(Z|z|[+-]\d{2}:\d{2})?")


def sbom_time(source_date_epoch: int | None, image_created: str | None) -> str:
    """When the SBOM says it was made: SOURCE_DATE_EPOCH when set, else the image config's
    `created` (to the second, in UTC), else the Unix epoch. Never the clock."""
    if source_date_epoch is not None:
        return datetime.fromtimestamp(source_date_epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    match = _RFC3339.fullmatch(image_created.strip()) if image_created else None
    if match is None:
        return EPOCH
    when = datetime.strptime(f"{match[1]}T{match[2]}", "%Y-%m-%dT%H:%M:%S")
    offset = match[3] or "Z"
    if offset not in ("Z", "z"):
        sign = 1 if offset[0] == "+" else -1
        when -= sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6]))
    if when.year < 1970:  # Go's zero time (0001-01-01) in images that record no time
        return EPOCH
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def dumps(document: Document) -> str:
    """The one way builder writes an SBOM: sorted keys, two-space indent, UTF-8, a final newline.
    orjson writes the same bytes as `json.dumps(indent=2, sort_keys=True, ensure_ascii=False)`,
    ten times faster (an SBOM of a CUDA image runs to tens of MB); json takes what orjson refuses."""
    try:
        return orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"
    except TypeError:  # integers beyond 64 bits, keys that are not strings
        return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def copy_of(document: Document) -> Document:
    """A deep copy of a JSON document (through orjson: faster than copy.deepcopy)."""
    try:
        return dict(orjson.loads(orjson.dumps(document)))
    except TypeError:
        return copy.deepcopy(document)


def content_uuid(digest: str, document: Document) -> str:
    """A UUIDv5 of the image's manifest digest and the document's content."""
    content = hashlib.sha256(dumps(document).encode()).hexdigest()
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"builder-sbom:{digest}:{content}"))


def _key(item: Any) -> str:
    try:
        return orjson.dumps(item, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        return json.dumps(item, sort_keys=True)


def _sort(items: list[Any], *fields: str) -> list[Any]:
    return sorted(items, key=lambda item: ([str(item.get(f, "")) for f in fields], _key(item)))


def normalize_spdx(doc: Document, *, digest: str, created: str, namespace: str | None = None) -> Document:
    """`doc` with `created`, a documentNamespace derived from `digest` and the content (under
    `namespace`, else syft's base URI), and packages, files and relationships in a stable order."""
    out = copy_of(doc)
    out.setdefault("creationInfo", {})["created"] = created
    for field, keys in (("packages", ("SPDXID",)), ("files", ("SPDXID",))):
        if field in out:
            out[field] = _sort(out[field], *keys)
    if "relationships" in out:
        out["relationships"] = _sort(out["relationships"], "spdxElementId", "relationshipType", "relatedSpdxElement")
    for package in out.get("packages", []):
        if "annotations" in package:
            package["annotations"] = sorted(package["annotations"], key=_key)
    base = (namespace or str(out.get("documentNamespace", "")).rsplit("/", 1)[0] or "https://spdx.invalid").rstrip("/")
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", str(out.get("name", "image"))).strip("-") or "image"
    out["documentNamespace"] = ""
    out["documentNamespace"] = f"{base}/{name}-{content_uuid(digest, out)}"
    return out


def normalize_cyclonedx(bom: Document, *, digest: str, created: str) -> Document:
    """`bom` with `metadata.timestamp` = `created`, a serialNumber derived from `digest` and the
    content, and components and dependencies in a stable order."""
    out = copy_of(bom)
    out.setdefault("metadata", {})["timestamp"] = created
    if "components" in out:
        out["components"] = _sort(out["components"], "bom-ref")
    if "dependencies" in out:
        out["dependencies"] = _sort(
            [{**d, "dependsOn": sorted(d["dependsOn"])} if "dependsOn" in d else d for d in out["dependencies"]],
            "ref",
        )
    out["serialNumber"] = ""
    out["serialNumber"] = f"urn:uuid:{content_uuid(digest, out)}"
    return out
