"""What `build stack` tells the build (a plain value: the no-op build reads it without loading the
pipeline, the catalogue models or any network code)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal


@dataclass(frozen=True)
class StackSettings:
    engine: Literal["auto", "docker", "buildah"]
    out_dir: Path
    registry: str | None
    push: bool
    update_lock: bool
    publish_wheels: str | None
    build_memory_gb: float | None
    force: bool = False
    builder: str | None = None  # a buildx builder instance to build on
