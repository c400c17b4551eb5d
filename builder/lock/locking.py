"""Locking one stack x target: decide the heavy packages, resolve base images and the environment,
and write the lock; or say why an existing lock no longer matches its upstreams."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from builder import __version__
from builder.catalogue.documents import Catalogue, Target
from builder.errors import CheckFailed
from builder.lock.decide import decide
from builder.lock.environment import resolve_environment
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
    sha256_text,
    write_lock,
)
from builder.lock.paths import LockPaths, lock_paths
from builder.rules.platform import TargetPlatform
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
    """Lock one stack x target. An existing lock whose inputs, heavy packages and images are unchanged
    keeps its environment (like `uv lock`); `upgrade` re-resolves it from the indexes."""
    stack_doc = catalogue.stack(stack_name)
    stack = stack_doc.model
    target = catalogue.target(stack, target_id)
    platform = TargetPlatform.of(target.cell, target.device)
    paths = lock_paths(lock_dir, stack.name, target_id)
    existing = _existing(paths)

    progress(f"{target_id}: deciding {len(stack.packages)} heavy packages")
    decisions = decide(catalogue, stack_doc, target, upstreams)
    if existing is not None:
        _refuse_rehash(existing, decisions)
    progress(f"{target_id}: resolving base images for {platform.oci_arch}")
    images = base_images(target, upstreams)
    files = input_checksums(catalogue, stack, target_id)
    if existing is not None and not upgrade and not changes(existing, files, decisions, images):
        progress(f"{target_id}: inputs, packages and images unchanged: keeping the locked environment")
        decisions, pylock = existing.image.packages, existing.pylock
    else:
        progress(f"{target_id}: resolving the environment with uv for {platform.uv_platform}")
        decisions, pylock = resolve_environment(catalogue, stack_doc, decisions, platform, upstreams)
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
    changed = write_lock(paths, image, pylock)
    return LockResult(target_id, paths, image, changed)


def _refuse_rehash(lock: Lock, decisions: list[Decision]) -> None:
    """The same file name with new bytes is refused: an index re-uploaded a wheel."""
    recorded = pylock_hashes(lock.pylock)
    for decision in decisions:
        if decision.filename in recorded and decision.sha256 != recorded[decision.filename]:
            raise CheckFailed(
                f"{decision.filename}: the index now serves sha256 {decision.sha256}, "
                f"the lock recorded sha256 {recorded[decision.filename]}; refusing to lock different bytes under the same name",
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
    return changes(
        lock, lock.image.inputs.files, decide(catalogue, stack_doc, target, upstreams), base_images(target, upstreams)
    )
