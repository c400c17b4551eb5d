"""Completeness: every package the lock puts in the image must be among what syft found there. Pure."""

from __future__ import annotations

from collections.abc import Mapping

from packaging.utils import canonicalize_name

from builder.sbom.contents import LockContents
from builder.sbom.join import same_version


def missing_packages(
    found: Mapping[str, list[str]], contents: LockContents, allowed: Mapping[str, str] | None = None
) -> list[str]:
    """One line per locked runtime package (locked wheel or source build) syft did not find in the
    image at its locked version, naming the version syft found instead, if any. Names are compared
    canonicalized, versions by PEP 440 (a source build's local label, +cu126, is not compared).
    Packages in `allowed` (the site policy's allow-missing) are not checked."""
    skip = {str(canonicalize_name(name)) for name in allowed or {}}
    checks = [(w.name, w.version, False) for w in contents.wheels]
    checks += [(s.name, s.version, True) for s in contents.sources]
    lines = []
    for name, version, public in sorted(checks):
        if name in skip:
            continue
        versions = found.get(name, [])
        if any(same_version(v, version, public=public) for v in versions):
            continue
        seen = f"syft found {', '.join(versions)}" if versions else "syft found no such package"
        lines.append(f"{name} {version} ({seen})")
    return lines
