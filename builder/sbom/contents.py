"""What a lock says an image holds and was made with, as the SBOM join needs it. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from packaging.utils import canonicalize_name

from builder.lock.model import Lock, read_toml
from builder.plan.stages import Plan
from builder.upstream.credentials import split_credentials


def clean_url(url: str) -> str:
    """`url` without any user:password."""
    return split_credentials(url)[0]


@dataclass(frozen=True)
class LockedWheel:
    """A runtime package installed from a locked wheel."""

    name: str  # canonical
    version: str
    url: str  # the wheel, credential-free
    sha256: str
    index: str | None  # the index it was chosen from, credential-free, when the lock records it
    recipe: str | None  # the catalogue recipe when it is one of the stack's heavy packages


@dataclass(frozen=True)
class SourceBuilt:
    """A runtime package built from source in a builder stage."""

    name: str  # canonical
    version: str
    repository: str  # credential-free
    commit: str
    ref: str
    subdirectory: str | None
    stage: str  # build-<recipe>
    stage_key: str

    @property
    def download_location(self) -> str:
        """SPDX's VCS form: git+URL@COMMIT[#SUBDIRECTORY]."""
        where = self.repository if self.repository.startswith("git+") else f"git+{self.repository}"
        return f"{where}@{self.commit}" + (f"#{self.subdirectory}" if self.subdirectory else "")


@dataclass(frozen=True)
class BaseImage:
    role: str  # runtime | devel
    repository: str  # registry/path
    tag: str
    digest: str
    index_digest: str | None
    platform: str

    @property
    def purl(self) -> str:
        name = self.repository.rsplit("/", 1)[-1]
        arch = self.platform.split("/")[1] if "/" in self.platform else self.platform
        return f"pkg:oci/{name}@{self.digest.replace(':', '%3A')}?arch={arch}&repository_url={self.repository}&tag={self.tag}"


@dataclass(frozen=True)
class BuildTool:
    """What a builder stage used and did not ship: a locked build requirement or a system package."""

    stage: str
    stage_key: str
    kind: str  # python | system
    name: str
    version: str | None = None
    url: str | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class LockContents:
    stack: str
    target: str
    platform: str  # linux/<arch>
    lock_checksum: str
    wheels: tuple[LockedWheel, ...]
    sources: tuple[SourceBuilt, ...]
    bases: tuple[BaseImage, ...]
    tools: tuple[BuildTool, ...]

    def runtime(self) -> list[tuple[str, str]]:
        """Every runtime package the lock puts in the image: (canonical name, version)."""
        return sorted({(w.name, w.version) for w in self.wheels} | {(s.name, s.version) for s in self.sources})


def _indexes(lock: Lock) -> dict[str, str]:
    """Canonical name -> the index each package came from, where the lock says: the heavy wheels'
    decisions, and a pylock package's own `index` (PEP 751)."""
    found = {}
    for package in read_toml(lock.pylock).get("packages", []):
        if isinstance(package, dict) and isinstance(package.get("index"), str) and "name" in package:
            found[str(canonicalize_name(package["name"]))] = clean_url(package["index"])
    for decision in lock.image.packages:
        if decision.kind == "wheel" and decision.source.startswith(("http://", "https://")):
            found[str(canonicalize_name(decision.package))] = clean_url(decision.source)
    return found


def lock_contents(plan: Plan, lock: Lock) -> LockContents:
    """The join's view of a stack x target: locked wheels, source builds, base images, build tools."""
    indexes = _indexes(lock)
    recipes = {str(canonicalize_name(d.package)): d.recipe for d in lock.image.packages}
    wheels = tuple(
        LockedWheel(r.name, r.version, clean_url(r.url), r.sha256, indexes.get(r.name), recipes.get(r.name))
        for r in plan.runtime
    )
    packages = {d.recipe: d for d in lock.image.packages}
    sources = []
    tools = []
    for stage in plan.builders:
        decision = packages[stage.recipe]
        sources.append(
            SourceBuilt(
                name=str(canonicalize_name(decision.package)),
                version=stage.version,
                repository=clean_url(stage.repository),
                commit=stage.commit,
                ref=stage.ref,
                subdirectory=stage.subdirectory,
                stage=stage.name,
                stage_key=stage.key,
            )
        )
        for requirement in stage.build_requirements:
            url = clean_url(requirement.url)
            tools.append(
                BuildTool(
                    stage.name, stage.key, "python", requirement.name, requirement.version, url, requirement.sha256
                )
            )
        tools += [BuildTool(stage.name, stage.key, "system", name) for name in sorted(set(stage.system_packages))]
    bases = []
    for role in ("runtime", "devel"):
        image = getattr(lock.image.base_images, role)
        repository, _, tag = image.ref.rpartition(":")
        bases.append(BaseImage(role, repository, tag, image.digest, image.index_digest, image.platform))
    return LockContents(
        stack=plan.stack,
        target=plan.target,
        platform=f"linux/{plan.platform.oci_arch}",
        lock_checksum=lock.checksum,
        wheels=wheels,
        sources=tuple(sorted(sources, key=lambda s: s.name)),
        bases=tuple(bases),
        tools=tuple(sorted(tools, key=lambda t: (t.stage, t.kind, t.name))),
    )
