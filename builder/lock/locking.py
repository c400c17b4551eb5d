"""Locking one stack x target: gather what each heavy package may be, resolve the environment
jointly, resolve base images, and write the lock; or say why an existing lock no longer matches."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from builder import __version__
from builder.catalogue.documents import Catalogue, Target
from builder.errors import CheckFailed
from builder.lock.candidates import Candidates, gather
from builder.lock.environment import resolve, resolve_build_requirements
from builder.lock.inputs import input_checksums, overall
from builder.lock.model import (
    LOCK_VERSION,
    BaseImageLocks,
    Decision,
    ImageLock,
    Lock,
    LockedImage,
    LockedPlatform,
    LockInputs,
    changes,
    pylock_hashes,
    read_lock,
    read_toml,
    sha256_text,
    write_lock,
)
from builder.lock.paths import LockPaths, lock_paths
from builder.rules.platform import TargetPlatform
from builder.upstream.http import host_of
from builder.upstream.upstreams import Upstreams

Progress = Callable[[str], None]


@dataclass(frozen=True)
class LockResult:
    target: str
    paths: LockPaths
    image: ImageLock
    changed: bool

    @property
    def decisions(self) -> list[Decision]:
        return self.image.packages


def base_images(target: Target, upstreams: Upstreams) -> BaseImageLocks:
    """The cell's base images resolved to digests for its platform (through mirrors)."""
    platform = TargetPlatform.of(target.cell, target.device)
    resolved = {}
    for role in ("runtime", "devel"):
        image = getattr(target.cell.base_images, role)
        found = upstreams.registry.resolve(image.ref, "linux", platform.oci_arch)
        if image.digest and image.digest not in (found.digest, found.index_digest):
            raise CheckFailed(f"{image.ref} resolves to {found.digest}, but {target.id} pins {image.digest}")
        resolved[role] = LockedImage(
            ref=found.ref, digest=found.digest, index_digest=found.index_digest, platform=found.platform
        )
    return BaseImageLocks(**resolved)


def _existing(paths: LockPaths) -> Lock | None:
    """The lock already there, if it can be read; an unreadable one is simply replaced."""
    try:
        return read_lock(paths)
    except CheckFailed:
        return None


def _offer_changed(lock: Lock, candidates: list[Candidates], upstreams: Upstreams) -> list[str]:
    """The packages whose candidates (or whose locked source commit) differ from the lock's."""
    changed = []
    for item in candidates:
        locked = lock.image.decision(item.recipe)
        if (
            locked is None
            or locked.candidates != item.digest()
            or (locked.kind == "source" and upstreams.git.commit(locked.source, str(locked.ref)) != locked.commit)
        ):
            changed.append(item.recipe)
    return changed


def lock_target(
    catalogue: Catalogue,
    stack_name: str,
    target_id: str,
    lock_dir: Path,
    upstreams: Upstreams,
    progress: Progress = lambda _: None,
    *,
    upgrade: bool = False,
) -> LockResult:
    """Lock one stack x target. An existing lock whose inputs, offered candidates and images are
    unchanged keeps its environment (like `uv lock`); `upgrade` re-resolves it from the indexes."""
    stack_doc = catalogue.stack(stack_name)
    stack = stack_doc.model
    target = catalogue.target(stack, target_id)
    platform = TargetPlatform.of(target.cell, target.device)
    paths = lock_paths(lock_dir, stack.name, target_id)
    existing = _existing(paths)

    progress(f"{target_id}: reading what the indexes offer for {len(stack.packages)} heavy packages")
    candidates = gather(catalogue, stack_doc, target, upstreams)
    if existing is not None:
        _refuse_rehash(existing, candidates, upstreams.index_urls(catalogue, target), upstreams)
    progress(f"{target_id}: resolving base images for {platform.oci_arch}")
    images = base_images(target, upstreams)
    files = input_checksums(catalogue, stack, target_id)
    keep = (
        existing is not None
        and not upgrade
        and not changes(existing, files, images=images)
        and not _offer_changed(existing, candidates, upstreams)
    )
    if existing is not None and keep:
        progress(f"{target_id}: inputs, candidates and images unchanged: keeping the locked environment")
        decisions, pylock, builds = existing.image.packages, existing.pylock, existing.build_pylocks
    else:
        progress(f"{target_id}: resolving the environment with uv for {platform.uv_platform} (heavy packages jointly)")
        cell_indexes = upstreams.index_urls(catalogue, target)
        resolution = resolve(catalogue, stack_doc, candidates, platform, upstreams, cell_indexes)
        decisions, pylock = resolution.decisions, resolution.pylock
        sources = [d.recipe for d in decisions if d.kind == "source"]
        if sources:
            progress(f"{target_id}: locking the build requirements of {', '.join(sources)}")
        builds = resolve_build_requirements(catalogue, decisions, platform, upstreams)
    image = ImageLock(
        lock_version=LOCK_VERSION,
        created_by=f"builder {__version__}",
        stack=stack.name,
        target=target_id,
        platform=LockedPlatform(
            python=platform.python,
            arch=platform.arch,
            glibc=f"{platform.glibc[0]}.{platform.glibc[1]}",
            cuda=platform.cuda,
            oci=f"linux/{platform.oci_arch}",
        ),
        inputs=LockInputs(checksum=overall(files), files=files),
        indexes=upstreams.index_urls(catalogue, target),
        base_images=images,
        packages=decisions,
        pylock_sha256=sha256_text(pylock),
    )
    image, changed = write_lock(paths, image, pylock, builds)
    return LockResult(target_id, paths, image, changed)


def rehashed(lock: Lock, candidates: list[Candidates], cell_indexes: dict[str, str], upstreams: Upstreams) -> list[str]:
    """Locked wheels whose file name an index now lists with other bytes (an index re-uploaded a
    wheel): the heavy packages' candidates, and every other locked wheel served by a cell index
    (the public index never re-uploads a file name; the Jetson index has)."""
    recorded = pylock_hashes(lock.pylock)
    listed = {w.file.filename: w.file.sha256 for item in candidates for w in item.wheels}
    heavy = {canonicalize_name(item.recipe) for item in candidates}
    hosts = {host_of(url): url for url in cell_indexes.values()}
    for package in read_toml(lock.pylock).get("packages", []):
        name = canonicalize_name(package["name"])
        served = [w for w in package.get("wheels", []) if host_of(str(w.get("url", ""))) in hosts]
        if name in heavy or not served or upstreams.options.offline:  # offline: only what was asked before
            continue
        page = upstreams.index.page(hosts[host_of(str(served[0]["url"]))], name)
        listed.update({file.filename: file.sha256 for file in page.files})
    return [
        f"{name}: the index now serves sha256 {listed[name]}, the lock recorded sha256 {sha}"
        for name, sha in sorted(recorded.items())
        if listed.get(name) not in (None, sha)
    ]


def _refuse_rehash(
    lock: Lock, candidates: list[Candidates], cell_indexes: dict[str, str], upstreams: Upstreams
) -> None:
    """The same file name with new bytes is refused, never locked over."""
    found = rehashed(lock, candidates, cell_indexes, upstreams)
    if found:
        raise CheckFailed(
            f"{found[0]}; refusing to lock different bytes under the same name",
            hint=f"if the new bytes are trusted, delete {lock.paths.directory} and lock again",
        )


def lock_drift(
    catalogue: Catalogue, stack_name: str, target_id: str, lock_dir: Path, upstreams: Upstreams
) -> list[str]:
    """Why the lock for stack x target is stale (empty when it is current): the catalogue inputs and
    the lock's own files first, then what the indexes and registries answer now."""
    stack_doc = catalogue.stack(stack_name)
    stack = stack_doc.model
    target = catalogue.target(stack, target_id)
    paths = lock_paths(lock_dir, stack.name, target_id)
    try:
        lock = read_lock(paths, hint=f"run 'build lock {stack.name} --target {target_id}'")
    except CheckFailed as error:
        return [error.message + (f" ({error.hint})" if error.hint else "")]
    local = changes(lock, input_checksums(catalogue, stack, target_id))
    if local:
        return local
    candidates = gather(catalogue, stack_doc, target, upstreams)
    found = rehashed(lock, candidates, upstreams.index_urls(catalogue, target), upstreams)
    decisions = None
    if _offer_changed(lock, candidates, upstreams):
        platform = TargetPlatform.of(target.cell, target.device)
        cell_indexes = upstreams.index_urls(catalogue, target)
        decisions = resolve(catalogue, stack_doc, candidates, platform, upstreams, cell_indexes).decisions
    return found + changes(lock, lock.image.inputs.files, decisions, base_images(target, upstreams))
