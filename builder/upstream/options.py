"""What a command tells the upstream clients: where to cache, what to override, whether offline.
Kept apart from the clients so that reading options imports no network code."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class UpstreamOptions:
    cache_dir: Path
    index_overrides: dict[str, str] = field(default_factory=dict)
    image_mirrors: dict[str, str] = field(default_factory=dict)
    git_mirrors: dict[str, str] = field(default_factory=dict)
    offline: bool = False
