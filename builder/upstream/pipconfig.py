"""The machine's own pip configuration: what the `default` index means here."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field

from builder import process

_LINE = re.compile(r"^(?P<section>[^.]*)\.(?P<key>[a-z-]+)='(?P<value>.*)'$")


@dataclass(frozen=True)
class PipIndexes:
    index_url: str | None = None  # None: the installer's own default
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = field(default_factory=tuple)

    def for_images(self) -> PipIndexes:
        """Without local (file:) indexes and find-links: a lock must name files a build can fetch."""
        local = ("file:", "/", ".")
        return PipIndexes(
            self.index_url if self.index_url and not self.index_url.startswith(local) else None,
            tuple(url for url in self.extra_index_urls if not url.startswith(local)),
            tuple(link for link in self.find_links if not link.startswith(local)),
        )

    def uv_args(self) -> list[str]:
        args = ["--index-url", self.index_url] if self.index_url else []
        if self.extra_index_urls or self.find_links:
            # pip considers every configured index for each package; uv by default stops at the
            # first index that has the name, so a partial local mirror would hide the platform's wheels.
            args += ["--index-strategy", "unsafe-best-match"]
        for url in self.extra_index_urls:
            args += ["--extra-index-url", url]
        for link in self.find_links:
            args += ["--find-links", link]
        return args


def parse_pip_config(text: str) -> PipIndexes:
    """Parse `pip config list`; environment entries (':env:') win over files, as in pip."""
    values: dict[str, tuple[int, str]] = {}
    for line in text.splitlines():
        match = _LINE.match(line.strip())
        if match is None or match["section"] not in (":env:", "global", "install", "download"):
            continue
        priority = 1 if match["section"] == ":env:" else 0
        key = match["key"]
        if key not in values or priority >= values[key][0]:
            values[key] = (priority, match["value"])

    def get(key: str) -> tuple[str, ...]:
        return tuple(values[key][1].split()) if key in values else ()

    index = get("index-url")
    return PipIndexes(index[0] if index else None, get("extra-index-url"), get("find-links"))


def machine_pip_indexes() -> PipIndexes:
    result = process.run([sys.executable, "-m", "pip", "config", "list"], timeout=60)
    return parse_pip_config(result.stdout) if result.returncode == 0 else PipIndexes()
