"""Everything resolution asks the outside world, behind one value: indexes, git, registries and
the machine's own pip configuration. Commands open one `Upstreams` and hand it down."""

from __future__ import annotations

from builder.catalogue.documents import Catalogue, Target
from builder.rules.compat import DEFAULT_INDEX
from builder.upstream.git import GitResolver
from builder.upstream.http import HttpClient
from builder.upstream.index import IndexClient
from builder.upstream.options import UpstreamOptions
from builder.upstream.pipconfig import PipIndexes, machine_pip_indexes
from builder.upstream.registry import RegistryClient


class Upstreams:
    def __init__(self, options: UpstreamOptions) -> None:
        self.options = options
        self.http = HttpClient(options.cache_dir, offline=options.offline)
        self.index = IndexClient(self.http)
        self.git = GitResolver(options.cache_dir, offline=options.offline, mirrors=options.git_mirrors)
        self.registry = RegistryClient(self.http, options.image_mirrors)
        self._pip: PipIndexes | None = None

    def __enter__(self) -> Upstreams:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def default_indexes(self) -> PipIndexes:
        """What the `default` index means: an override, else the machine's pip configuration."""
        if DEFAULT_INDEX in self.options.index_overrides:
            return PipIndexes(self.options.index_overrides[DEFAULT_INDEX])
        if self._pip is None:
            self._pip = machine_pip_indexes().for_images()
        return self._pip

    def index_urls(self, catalogue: Catalogue, target: Target) -> dict[str, str]:
        """The cell's named indexes as URLs, overrides applied."""
        urls = {}
        for name, path in target.cell.indexes.items():
            template = self.options.index_overrides.get(name, catalogue.indexes[name].url)
            urls[name] = template.replace("{path}", path)
        return urls
