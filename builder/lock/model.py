"""The lock of one stack x target, as a typed value: its one reader, its one writer, and the one
answer to "what changed since it was made?".

A lock is two files in `<lock dir>/<stack>/<target>/`: `pylock.toml` (PEP 751, the whole Python
environment) and `image-lock.json` (the heavy-package decisions, base-image digests, index URLs,
the checksum of every catalogue input, and the pylock's sha256).
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from builder.catalogue.documents import Catalogue
from builder.catalogue.models import Stack
from builder.errors import CheckFailed, Drift, FileProblem, display_path
from builder.fsutil import write_atomic
from builder.lock.inputs import input_checksums
from builder.lock.paths import LockPaths, lock_paths

LOCK_VERSION: Literal["1"] = "1"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Decision(_Model):
    """How one of the stack's heavy packages is obtained on one cell."""

    package: str
    recipe: str
    wanted: str
    kind: Literal["wheel", "default", "source"]
    version: str | None
    source: str  # index URL, "default" or repository
    why: str
    filename: str | None = None
    url: str | None = None
    sha256: str | None = None
    ref: str | None = None
    commit: str | None = None
    candidates: str | None = None  # sha256 of what builder offered the resolver for this package

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class LockedImage(_Model):
    ref: str
    digest: str  # the manifest for the platform
    index_digest: str | None  # the multi-platform index it was picked from, if any
    platform: str

    @property
    def pinned(self) -> str:
        return f"{self.ref.rpartition(':')[0]}@{self.digest}"


class LockedPlatform(_Model):
    python: str
    arch: str
    glibc: str
    cuda: str
    oci: str


class LockInputs(_Model):
    checksum: str
    files: dict[str, str]  # catalogue path -> sha256:<hex>


class BaseImageLocks(_Model):
    runtime: LockedImage
    devel: LockedImage


class ImageLock(_Model):
    """`image-lock.json`."""

    lock_version: Literal["1"] = Field(alias="lock-version")
    created_by: str = Field(alias="created-by")
    stack: str
    target: str
    platform: LockedPlatform
    inputs: LockInputs
    indexes: dict[str, str]
    base_images: BaseImageLocks = Field(alias="base-images")
    packages: list[Decision]
    pylock_sha256: str = Field(alias="pylock-sha256")

    def to_text(self) -> str:
        data = self.model_dump(by_alias=True)
        data["packages"] = [decision.to_json() for decision in self.packages]
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    def decision(self, recipe: str) -> Decision | None:
        return next((d for d in self.packages if d.recipe == recipe), None)


@dataclass(frozen=True)
class Lock:
    paths: LockPaths
    image: ImageLock
    pylock: str  # the pylock.toml text

    @property
    def checksum(self) -> str:
        """The checksum of the catalogue inputs: what image tags and labels name the lock by."""
        return self.image.inputs.checksum


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def read_lock(paths: LockPaths, *, hint: str | None = None) -> Lock:
    """Read and validate a lock; a missing or unreadable one is a failed check naming the file."""
    if not paths.exists():
        raise CheckFailed(f"no lock for {paths.stack} on {paths.target} at {display_path(paths.directory)}", hint=hint)
    try:
        pylock = paths.pylock.read_text(encoding="utf-8")
        text = paths.image_lock.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise CheckFailed(f"{display_path(paths.directory)}: a lock file is not UTF-8 text ({error.reason})") from None
    except OSError as error:
        raise FileProblem(error) from None
    try:
        image = ImageLock.model_validate_json(text)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "the top level"
        raise CheckFailed(
            f"{display_path(paths.image_lock)}: not an image lock this version can read ({where}: {first['msg']})",
            hint=hint,
        ) from None
    return Lock(paths, image, pylock)


def write_lock(paths: LockPaths, image: ImageLock, pylock: str) -> bool:
    """Write both files (each atomically); whether either changed."""
    text = image.to_text()
    changed = not paths.exists() or (paths.pylock.read_text() != pylock or paths.image_lock.read_text() != text)
    paths.directory.mkdir(parents=True, exist_ok=True)
    write_atomic(paths.pylock, pylock)
    write_atomic(paths.image_lock, text)
    return changed


def changes(
    lock: Lock,
    inputs: dict[str, str],
    decisions: list[Decision] | None = None,
    images: BaseImageLocks | None = None,
) -> list[str]:
    """Why `lock` no longer describes what it was made from (empty when it still does).

    `inputs` are the catalogue files' checksums now; `decisions` and `images` (what the indexes
    and registries answer now) are compared when given: `lock --check` and re-locking pass them,
    plan, render and stack read a lock without asking the network.
    """
    found = []
    recorded = lock.image.inputs.files
    for name in sorted(set(inputs) | set(recorded)):
        if name not in recorded:
            found.append(f"input {name} is new since the lock")
        elif name not in inputs:
            found.append(f"input {name} is no longer used")
        elif inputs[name] != recorded[name]:
            found.append(f"input {name} changed since the lock")
    if sha256_text(lock.pylock) != lock.image.pylock_sha256:
        found.append(f"{display_path(lock.paths.pylock)} was edited after locking")
    if decisions is not None:
        found += package_drift(lock.image.packages, decisions)
    if images is not None:
        for role in ("runtime", "devel"):
            now, was = getattr(images, role), getattr(lock.image.base_images, role)
            if now.digest != was.digest:
                found.append(f"{now.ref} now points at {now.digest} for {now.platform}, the lock has {was.digest}")
    return found


def require_current(lock: Lock, inputs: dict[str, str], where: str, hint: str) -> Lock:
    """`lock` if nothing it was made from changed; else a failed check with one line per change."""
    found = changes(lock, inputs)
    if found:
        raise Drift(where, found, hint=hint)
    return lock


def package_drift(locked: list[Decision], decisions: list[Decision]) -> list[str]:
    was = {item.recipe: item for item in locked}
    found = []
    for decision in decisions:
        old = was.get(decision.recipe)
        if old is None:
            found.append(f"{decision.recipe}: not in the lock")
        elif decision.filename and decision.filename == old.filename and decision.sha256 != old.sha256:
            found.append(
                f"{decision.filename}: the index now serves sha256 {decision.sha256}, the lock recorded sha256 {old.sha256}"
            )
        elif decision.kind == "default" and old.kind == "default":
            continue  # its version is uv's to choose with the rest of the environment
        elif (decision.kind, decision.version, decision.commit) != (old.kind, old.version, old.commit):
            found.append(
                f"{decision.recipe}: the lock has {_describe(old)}, resolving now gives {_describe(decision)} ({decision.why})"
            )
    return found


def _describe(decision: Decision) -> str:
    return f"{decision.kind} {decision.version}" + (f" @ {decision.commit[:12]}" if decision.commit else "")


def read_toml(text: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    return tomllib.loads(text)


def pylock_hashes(text: str) -> dict[str, str]:
    """File name -> sha256 for every archive and wheel in a pylock."""
    found = {}
    for package in read_toml(text).get("packages", []):
        for item in [package.get("archive"), *package.get("wheels", [])]:
            if item and "url" in item and "sha256" in item.get("hashes", {}):
                found[item["url"].rsplit("/", 1)[-1].split("#")[0]] = item["hashes"]["sha256"]
    return found


def current_lock(catalogue: Catalogue, stack: Stack, target_id: str, lock_dir: Path) -> Lock:
    """The lock of stack x target, checked against the catalogue as it is now; a missing, unreadable
    or stale lock is a failed check that says how to make a current one. Reads no network."""
    paths = lock_paths(lock_dir, stack.name, target_id)
    hint = f"run 'build lock {stack.name} --target {target_id}'"
    lock = read_lock(paths, hint=hint)
    return require_current(
        lock, input_checksums(catalogue, stack, target_id), f"the lock for {stack.name} on {target_id}", hint
    )
