"""Wheels from builder stages, kept by the stage's content key and reused by any later build that
needs the same key (same recipe source, version, commit, devel base, platform, CUDA arch list,
build environment and locked dependencies); optionally published to a team PEP 503 index."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.errors import InternalError, UpstreamUnavailable
from builder.upstream.http import HttpClient

SUMS = "SHA256SUMS"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class CachedWheels:
    key: str
    directory: Path
    wheels: tuple[Path, ...]
    meta: dict[str, Any]
    sha256: dict[str, str]  # wheel file name -> hex digest, as checked when read


class WheelCache:
    def __init__(self, root: Path) -> None:
        self.root = root / "wheels"

    def _entry(self, key: str) -> Path:
        return self.root / key.removeprefix("sha256:")

    def get(self, key: str) -> CachedWheels | None:
        """The wheels stored under `key`, if every one still matches its recorded hash."""
        entry = self._entry(key)
        try:
            lines = (entry / SUMS).read_text().splitlines()
            meta = json.loads((entry / "meta.json").read_text())
        except (OSError, ValueError):
            return None
        sums = {name: digest for digest, _, name in (line.partition("  ") for line in lines if line)}
        wheels = tuple(entry / name for name in sorted(sums))
        if not wheels or any(not path.is_file() or sha256_file(path) != sums[path.name] for path in wheels):
            return None  # a damaged entry is a miss: the stage is built again
        return CachedWheels(key, entry, wheels, meta, sums)

    def put(self, key: str, wheels: list[Path], meta: dict[str, Any]) -> CachedWheels:
        """Store wheels under `key` atomically (a reader sees all of them or none)."""
        if not wheels:
            raise ValueError("no wheels to cache")
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".put-", dir=self.root))
        try:
            for wheel in wheels:
                shutil.copy2(wheel, staging / wheel.name)
            lines = [f"{sha256_file(staging / wheel.name)}  {wheel.name}" for wheel in sorted(wheels)]
            (staging / SUMS).write_text("\n".join(lines) + "\n")
            (staging / "meta.json").write_text(json.dumps({"key": key, **meta}, indent=2, sort_keys=True) + "\n")
            entry = self._entry(key)
            if entry.exists():
                shutil.rmtree(entry)
            staging.rename(entry)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        cached = self.get(key)
        if cached is None:
            raise InternalError(f"the wheel cache entry {key} does not read back after writing it")
        return cached


def publish(http: HttpClient, wheels: tuple[Path, ...], index_url: str) -> None:
    """Upload wheels to a PEP 503 index through the upload API pypiserver and twine speak.

    A failure is an error, not a warning: a runner that thinks it shared a wheel and did not
    would send every other runner into the same source build.
    """
    for wheel in wheels:
        name, version = wheel.name.split("-")[:2]
        fields = {":action": "file_upload", "name": name, "version": version, "sha256_digest": sha256_file(wheel)}
        response = http.post_file(index_url, fields, "content", wheel)
        if response.status == 409:
            continue  # already there: the index keeps the first upload, as it must
        if response.status >= 400:
            raise UpstreamUnavailable(f"{index_url}: publishing {wheel.name} was refused (HTTP {response.status})")
