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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from packaging.utils import canonicalize_name
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from builder.catalogue.documents import Catalogue
from builder.catalogue.models import Stack
from builder.errors import CheckFailed, Drift, FileProblem, display_path
from builder.fsutil import write_atomic
from builder.lock.inputs import input_checksums
from builder.lock.paths import LockPaths, lock_paths

LOCK_VERSION: Literal["2"] = "2"


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
    """`image-lock.json`. `checksum` covers every other field, so an edit anywhere shows."""

    lock_version: Literal["2"] = Field(alias="lock-version")
    created_by: str = Field(alias="created-by")
    stack: str
    target: str
    platform: LockedPlatform
    inputs: LockInputs
    indexes: dict[str, str]
    base_images: BaseImageLocks = Field(alias="base-images")
    packages: list[Decision]
    pylock_sha256: str = Field(alias="pylock-sha256")
    build_pylocks: dict[str, str] = Field(default_factory=dict, alias="build-pylocks")  # recipe -> sha256
    checksum: str = ""

    def content(self) -> dict[str, Any]:
        data = self.model_dump(by_alias=True, exclude={"checksum"})
        data["packages"] = [decision.to_json() for decision in self.packages]
        return data

    def own_checksum(self) -> str:
        """The hash of the lock's content (everything but `checksum` itself)."""
        return "sha256:" + sha256_text(json.dumps(self.content(), sort_keys=True, separators=(",", ":")))

    def sealed(self) -> ImageLock:
        return self.model_copy(update={"checksum": self.own_checksum()})

    def to_text(self) -> str:
        return json.dumps({**self.content(), "checksum": self.checksum}, indent=2, sort_keys=True) + "\n"

    def decision(self, recipe: str) -> Decision | None:
        return next((d for d in self.packages if d.recipe == recipe), None)


@dataclass(frozen=True)
class Lock:
    paths: LockPaths
    image: ImageLock
    pylock: str  # the pylock.toml text
    build_pylocks: dict[str, str] = field(default_factory=dict)  # recipe -> its build requirements' pylock text

    @property
    def checksum(self) -> str:
        """The checksum of the catalogue inputs: what image tags and labels name the lock by."""
        return self.image.inputs.checksum


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def read_lock(paths: LockPaths, *, hint: str | None = None) -> Lock:
    """Read a lock and check it against what it records about itself and against itself; a
    missing, corrupt or edited lock is a failed check naming the file (and both values)."""
    if not paths.exists():
        raise CheckFailed(f"no lock for {paths.stack} on {paths.target} at {display_path(paths.directory)}", hint=hint)
    pylock = _read_text(paths.pylock)
    image = _image_lock(paths, _read_text(paths.image_lock), hint)
    builds = {recipe: _read_text(paths.build_pylock(recipe)) for recipe in image.build_pylocks}
    lock = Lock(paths, image, pylock, builds)
    problems = integrity_problems(lock)
    if problems:
        raise CheckFailed(problems[0], hint=hint)
    return lock


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CheckFailed(f"{display_path(path)} is missing from the lock") from None
    except UnicodeDecodeError as error:
        raise CheckFailed(f"{display_path(path)} is corrupt: not UTF-8 text ({error.reason})") from None
    except OSError as error:
        raise FileProblem(error) from None


def _image_lock(paths: LockPaths, text: str, hint: str | None) -> ImageLock:
    try:
        data = json.loads(text)
    except ValueError as error:
        raise CheckFailed(f"{display_path(paths.image_lock)} is corrupt: not JSON ({error})", hint=hint) from None
    version = data.get("lock-version") if isinstance(data, dict) else None
    if version != LOCK_VERSION:
        raise CheckFailed(
            f"{display_path(paths.image_lock)} has lock-version {version!r}; this builder reads version {LOCK_VERSION}",
            hint=hint or f"lock again: build lock {paths.stack} --target {paths.target}",
        )
    try:
        return ImageLock.model_validate(data)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "the top level"
        raise CheckFailed(f"{display_path(paths.image_lock)} is corrupt: {where}: {first['msg']}", hint=hint) from None


def integrity_problems(lock: Lock) -> list[str]:
    """Where a lock disagrees with what it records about itself (its own checksum, the pylocks'
    sha256) or with itself (every heavy decision present in the pylock with the same hash or
    commit). Each names the file and both values."""
    paths, image = lock.paths, lock.image
    recomputed = image.own_checksum()
    if image.checksum != recomputed:
        return [
            f"{display_path(paths.image_lock)} was edited after locking: it records checksum "
            f"{image.checksum or '(none)'}, its content hashes to {recomputed}"
        ]
    found = []
    files = [(paths.pylock, lock.pylock, image.pylock_sha256)]
    files += [(paths.build_pylock(r), text, image.build_pylocks[r]) for r, text in lock.build_pylocks.items()]
    for path, text, recorded in files:
        if sha256_text(text) != recorded:
            found.append(
                f"{display_path(path)} was edited after locking: the image lock records sha256 {recorded}, "
                f"the file hashes to {sha256_text(text)}"
            )
    if found:
        return found
    try:
        packages = {canonicalize_name(p["name"]): p for p in read_toml(lock.pylock).get("packages", [])}
    except (ValueError, KeyError, TypeError) as error:
        return [f"{display_path(paths.pylock)} is corrupt: {error}"]
    for decision in image.packages:
        found += _decision_problems(decision, packages.get(canonicalize_name(decision.recipe)), paths)
    return found


def _decision_problems(decision: Decision, package: dict[str, Any] | None, paths: LockPaths) -> list[str]:
    pylock, image_lock = display_path(paths.pylock), display_path(paths.image_lock)
    if package is None:
        return [f"{pylock} has no {decision.recipe}; {image_lock} records {decision.kind} {decision.version}"]
    if decision.kind == "source":
        commit = (package.get("vcs") or {}).get("commit-id")
        if commit != decision.commit:
            return [f"{pylock} builds {decision.recipe} from commit {commit}; {image_lock} records {decision.commit}"]
        return []
    if str(package.get("version")) != str(decision.version):
        return [f"{pylock} has {decision.recipe} {package.get('version')}; {image_lock} records {decision.version}"]
    if decision.kind == "wheel":
        files = [*package.get("wheels", []), *([package["archive"]] if "archive" in package else [])]
        wheels = {w.get("url"): (w.get("hashes") or {}).get("sha256") for w in files}
        if wheels.get(decision.url) != decision.sha256:
            listed = ", ".join(f"{url} sha256 {sha}" for url, sha in wheels.items()) or "no wheel"
            return [
                f"{pylock} has {listed} for {decision.recipe}; {image_lock} records {decision.url} sha256 {decision.sha256}"
            ]
    return []


def write_lock(
    paths: LockPaths, image: ImageLock, pylock: str, build_pylocks: dict[str, str] | None = None
) -> tuple[ImageLock, bool]:
    """Write every file of a lock (each atomically; the image lock, sealed with its checksum, last):
    the image lock as written, and whether any file changed."""
    builds = build_pylocks or {}
    recorded = {recipe: sha256_text(text) for recipe, text in sorted(builds.items())}
    image = image.model_copy(update={"build_pylocks": recorded}).sealed()
    files = {paths.pylock: pylock, **{paths.build_pylock(r): t for r, t in builds.items()}}
    files[paths.image_lock] = image.to_text()
    changed = any(not path.is_file() or path.read_text() != text for path, text in files.items())
    paths.directory.mkdir(parents=True, exist_ok=True)
    for stale in paths.directory.glob("pylock.build-*.toml"):
        if stale not in files:
            stale.unlink()
    for path, text in files.items():
        write_atomic(path, text)
    return image, changed


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
