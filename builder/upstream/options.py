"""What a command tells the upstream clients: where to cache, what to override, whether offline.
Kept apart from the clients so that reading options imports no network code."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class UpstreamOptions:
    cache_dir: Path
    index_overrides: dict[str, str] = field(default_factory=dict)
    image_mirrors: dict[str, str] = field(default_factory=dict)
    git_mirrors: dict[str, str] = field(default_factory=dict)
    offline: bool = False


def default_cache_dir() -> Path:
    """$BUILDER_CACHE_DIR, else the XDG cache directory's builder/."""
    if "BUILDER_CACHE_DIR" in os.environ:
        return Path(os.environ["BUILDER_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "builder"
