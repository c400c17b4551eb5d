"""What a command tells the upstream clients: where to cache, what to override, whether offline.
Kept apart from the clients so that reading options imports no network code."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from builder.upstream.credentials import split_credentials


@dataclass(frozen=True)
class UpstreamOptions:
    """URLs here carry no credentials; `credentials` holds them by host[:port] (see `with_credentials`)."""

    cache_dir: Path
    index_overrides: dict[str, str] = field(default_factory=dict)
    image_mirrors: dict[str, str] = field(default_factory=dict)
    git_mirrors: dict[str, str] = field(default_factory=dict)
    offline: bool = False
    credentials: dict[str, tuple[str, str]] = field(default_factory=dict, repr=False)


def with_credentials(
    cache_dir: Path,
    index_overrides: dict[str, str],
    image_mirrors: dict[str, str],
    git_mirrors: dict[str, str],
    offline: bool,
) -> UpstreamOptions:
    """Options from URLs as a user gives them: credentials taken out of each URL and kept apart."""
    credentials: dict[str, tuple[str, str]] = {}

    def clean(url: str) -> str:
        without, host, credential = split_credentials(url)
        if credential is not None:
            credentials[host] = credential
        return without

    return UpstreamOptions(
        cache_dir,
        {name: clean(url) for name, url in index_overrides.items()},
        {source: clean(url) for source, url in image_mirrors.items()},
        {source: clean(url) for source, url in git_mirrors.items()},
        offline,
        credentials,
    )
