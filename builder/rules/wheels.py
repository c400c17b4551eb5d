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
    candidates: tuple[WheelCandidate, ...]  # acceptable wheels, newest first, the best-tagged file of each version
    offered: tuple[str, ...]  # versions offered for this platform, newest first
    wrong_cuda: tuple[str, ...]  # versions for this platform built for another CUDA

    @property
    def chosen(self) -> WheelCandidate | None:
        """The newest acceptable wheel: what the cell gets when nothing else constrains it."""
        return self.candidates[0] if self.candidates else None


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
    """The wheels of `name` for the platform that satisfy `spec` and the cell's CUDA, newest first."""
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
    best: dict[Version, WheelCandidate] = {}
    for candidate in sorted(candidates, key=lambda c: c.rank):
        best.setdefault(candidate.version, candidate)
    ordered = tuple(best[version] for version in sorted(best, reverse=True))
    return WheelChoice(ordered, _newest_first(offered), _newest_first(wrong_cuda - offered))


def _newest_first(versions: set[Version]) -> tuple[str, ...]:
    return tuple(str(version) for version in sorted(versions, reverse=True))


def source_versions(refs: Iterable[str], spec: SpecifierSet) -> list[str]:
    """The versions of a source build that satisfy `spec`, newest first."""
    return sorted(
        (text for text in refs if spec.contains(Version(text), prereleases=bool(spec.prereleases))),
        key=Version,
        reverse=True,
    )
