"""Everything resolution asks the outside world, behind one value: indexes, git, registries and
the machine's own pip configuration. Commands open one `Upstreams` and hand it down.

Every URL a user or the machine gives is split here into the URL builder keeps and carries into
locks and renders, and its credential, which only the HTTP client, uv (through a netrc) and builds
(through a netrc secret) ever see.
"""

from __future__ import annotations

from builder.catalogue.documents import Catalogue, Target
from builder.rules.compat import DEFAULT_INDEX
from builder.upstream.credentials import Credential, split_credentials
from builder.upstream.git import GitResolver
from builder.upstream.http import HttpClient
from builder.upstream.index import IndexClient
from builder.upstream.options import UpstreamOptions
from builder.upstream.pipconfig import PipIndexes, machine_pip_indexes
from builder.upstream.registry import RegistryClient


class Upstreams:
    def __init__(self, options: UpstreamOptions) -> None:
        self.options = options
        self.credentials: dict[str, Credential] = dict(options.credentials)
        self.index_overrides = {name: self.without_credentials(url) for name, url in options.index_overrides.items()}
        image_mirrors = {source: self.without_credentials(url) for source, url in options.image_mirrors.items()}
        self.http = HttpClient(options.cache_dir, offline=options.offline, credentials=self.credentials)
        self.index = IndexClient(self.http)
        self.git = GitResolver(options.cache_dir, offline=options.offline, mirrors=options.git_mirrors)
        self.registry = RegistryClient(self.http, image_mirrors)
        self._pip: PipIndexes | None = None

    def __enter__(self) -> Upstreams:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def without_credentials(self, url: str) -> str:
        """`url` as builder keeps it; its credential, if any, is kept for its host."""
        clean, host, credential = split_credentials(url)
        if credential is not None:
            self.credentials[host] = credential
        return clean

    def default_indexes(self) -> PipIndexes:
        """What the `default` index means: an override, else the machine's pip configuration."""
        if self._pip is None:
            if DEFAULT_INDEX in self.index_overrides:
                indexes = PipIndexes(self.index_overrides[DEFAULT_INDEX])
            else:
                indexes = machine_pip_indexes().for_images()
            self._pip = PipIndexes(
                self.without_credentials(indexes.index_url) if indexes.index_url else None,
                tuple(self.without_credentials(url) for url in indexes.extra_index_urls),
                tuple(self.without_credentials(url) for url in indexes.find_links),
            )
        return self._pip

    def index_urls(self, catalogue: Catalogue, target: Target) -> dict[str, str]:
        """The cell's named indexes as URLs (overrides applied, credentials kept apart)."""
        urls = {}
        for name, path in target.cell.indexes.items():
            template = self.index_overrides.get(name) or self.without_credentials(catalogue.indexes[name].url)
            urls[name] = template.replace("{path}", path)
        return urls
