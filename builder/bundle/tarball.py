"""The bundle's tar, written deterministically (manifest.json first, then every member by name;
mtime 0, uid/gid 0, no owner names, mode 0644) and read back member by member, each hashed as it
is unpacked, so that a tampered, missing, extra or truncated member is named."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from builder.bundle.layout import MANIFEST, Member, safe_name

Source = bytes | Path  # a member's content: in memory, or a file to stream
_CHUNK = 1 << 20


def describe(name: str, source: Source) -> Member:
    """The member `name` with `source` as its content: size and sha256."""
    digest = hashlib.sha256()
    if isinstance(source, bytes):
        digest.update(source)
        return Member(name, len(source), digest.hexdigest())
    size = 0
    with source.open("rb") as stream:
        for chunk in iter(lambda: stream.read(_CHUNK), b""):
            digest.update(chunk)
            size += len(chunk)
    return Member(name, size, digest.hexdigest())


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = size, 0, 0o644, 0, 0, "", ""
    return info


def write_bundle(path: Path, manifest: bytes, members: Mapping[str, Source]) -> None:
    """Write the tar to a temporary file beside `path`, then rename it over `path`."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as raw, tarfile.open(fileobj=raw, mode="w:", format=tarfile.PAX_FORMAT) as tar:
            _add(tar, MANIFEST, manifest)
            for name in sorted(members):
                _add(tar, name, members[name])
        Path(temporary).chmod(0o644)
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _add(tar: tarfile.TarFile, name: str, source: Source) -> None:
    if isinstance(source, bytes):
        tar.addfile(_info(name, len(source)), io.BytesIO(source))
        return
    with source.open("rb") as stream:
        tar.addfile(_info(name, os.fstat(stream.fileno()).st_size), stream)


@dataclass
class Unpacked:
    """What a bundle's tar held: manifest.json's bytes (None: not first, or absent), every other
    member as read (name -> its size and sha256), and what was wrong with the tar itself."""

    directory: Path
    manifest: bytes | None = None
    members: dict[str, Member] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def path(self, name: str) -> Path:
        return self.directory / name


def unpack(bundle: Path, directory: Path) -> Unpacked:
    """Unpack every regular member with a safe name into `directory`, hashing each; links, devices,
    unsafe names, duplicates and a truncated tar are problems naming the member."""
    found = Unpacked(directory)
    current = "the first member"
    try:
        with tarfile.open(bundle, mode="r:") as tar:
            for index, info in enumerate(tar):
                current = info.name
                problem = _refused(info, found)
                if problem:
                    found.problems.append(problem)
                    continue
                stream = tar.extractfile(info)
                assert stream is not None  # a regular file
                member = _extract(stream, directory / info.name, info.name)
                if info.name == MANIFEST:
                    if index == 0:
                        found.manifest = (directory / MANIFEST).read_bytes()
                    else:
                        found.problems.append(f"{MANIFEST} is not the bundle's first member")
                    continue
                found.members[info.name] = member
    except (tarfile.TarError, EOFError) as error:
        found.problems.append(f"{bundle.name} is truncated or corrupt at {current}: {error}")
    return found


def _refused(info: tarfile.TarInfo, found: Unpacked) -> str | None:
    if not info.isfile():
        return f"{info.name}: not a regular file (a bundle holds files only)"
    if not safe_name(info.name):
        return f"{info.name}: not a name a bundle member may have"
    if info.name in found.members or (info.name == MANIFEST and found.manifest is not None):
        return f"{info.name}: in the tar twice"
    return None


def _extract(stream: IO[bytes], destination: Path, name: str) -> Member:
    destination.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    with destination.open("wb") as out:
        for chunk in iter(lambda: stream.read(_CHUNK), b""):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
    return Member(name, size, digest.hexdigest())
