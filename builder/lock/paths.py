"""Where a lock's files are: `<lock dir>/<stack>/<target>/pylock.toml`, `image-lock.json`, and one
`pylock.build-<recipe>.toml` per source build (the build requirements of its builder stage)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LockPaths:
    directory: Path
    stack: str
    target: str

    @property
    def pylock(self) -> Path:
        return self.directory / "pylock.toml"

    @property
    def image_lock(self) -> Path:
        return self.directory / "image-lock.json"

    def build_pylock(self, recipe: str) -> Path:
        return self.directory / f"pylock.build-{recipe.replace('.', '-')}.toml"

    def exists(self) -> bool:
        return self.pylock.is_file() and self.image_lock.is_file()


def lock_paths(lock_dir: Path, stack: str, target_id: str) -> LockPaths:
    return LockPaths(lock_dir / stack / target_id, stack, target_id)
