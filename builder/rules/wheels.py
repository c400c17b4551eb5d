"""Wheel or source, per package and cell: pure choices over the files an index offers."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import Version

from builder.rules.platform import TargetPlatform


@dataclass(frozen=True)
class IndexFile:
    filename: str
    url: str  # without the #fragment
    sha256: str | None
    requires_python: str | None = None
    yanked: bool = False


@dataclass(frozen=True)
class WheelCandidate:
    version: Version
    file: IndexFile
    rank: int  # position of its best tag: lower is better


@dataclass(frozen=True)
class WheelChoice:
    chosen: WheelCandidate | None
    offered: tuple[str, ...]  # versions offered for this platform, newest first
    wrong_cuda: tuple[str, ...]  # versions for this platform built for another CUDA


def combined(*texts: str | None) -> SpecifierSet:
    spec = SpecifierSet()
    for text in texts:
        if text:
            spec &= SpecifierSet(text)
    return spec


def _python_ok(requires_python: str | None, python: str) -> bool:
    if not requires_python:
        return True
    try:
        return Version(python + ".0") in SpecifierSet(requires_python)
    except InvalidSpecifier:
        return True


def choose_wheel(
    files: Iterable[IndexFile], name: str, spec: SpecifierSet, platform: TargetPlatform, *, needs_cuda_local: bool
) -> WheelChoice:
    """The newest wheel of `name` for the platform that satisfies `spec` and the cell's CUDA."""
    ranks = {tag: position for position, tag in enumerate(platform.tags)}
    candidates: list[WheelCandidate] = []
    offered: set[Version] = set()
    wrong_cuda: set[Version] = set()
    for file in files:
        if not file.filename.endswith(".whl") or file.yanked:
            continue
        try:
            wheel_name, version, _, tags = parse_wheel_filename(file.filename)
        except InvalidWheelFilename:
            continue
        matching = [ranks[tag] for tag in tags if tag in ranks]
        if canonicalize_name(wheel_name) != canonicalize_name(name) or not matching:
            continue
        if not _python_ok(file.requires_python, platform.python):
            continue
        local = version.local or ""
        if local.startswith("cu") and local.split(".")[0] != platform.cuda_local:
            wrong_cuda.add(version)
            continue
        if needs_cuda_local and not local.startswith(platform.cuda_local):
            wrong_cuda.add(version)
            continue
        offered.add(version)
        if spec.contains(version, prereleases=bool(spec.prereleases)):
            candidates.append(WheelCandidate(version, file, min(matching)))
    chosen = max(candidates, key=lambda c: (c.version, -c.rank), default=None)
    return WheelChoice(chosen, _newest_first(offered), _newest_first(wrong_cuda - offered))


def _newest_first(versions: set[Version]) -> tuple[str, ...]:
    return tuple(str(version) for version in sorted(versions, reverse=True))


def choose_ref(refs: dict[str, str], spec: SpecifierSet) -> tuple[str, str] | None:
    """The newest (version, git ref) of a source build that satisfies `spec`."""
    versions = sorted(
        (Version(version) for version in refs if spec.contains(Version(version), prereleases=bool(spec.prereleases))),
        reverse=True,
    )
    if not versions:
        return None
    for text, ref in refs.items():
        if Version(text) == versions[0]:
            return text, ref
    return None
