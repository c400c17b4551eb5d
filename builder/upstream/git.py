"""Resolving a source build's tag to the commit it names, with a cache for --offline."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from builder import process
from builder.errors import BuilderError, UpstreamUnavailable
from builder.fsutil import write_atomic
from builder.rules.mirrors import apply_mirrors

COMMIT = re.compile(r"^[0-9a-f]{40}$")


class GitResolver:
    def __init__(self, cache_dir: Path, *, offline: bool = False, mirrors: dict[str, str] | None = None) -> None:
        self.cache_file = cache_dir / "git-refs.json"
        self.offline = offline
        self.mirrors = mirrors or {}

    def _cache(self) -> dict[str, str]:
        try:
            data = json.loads(self.cache_file.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def commit(self, repository: str, ref: str) -> str:
        """The 40-hex commit `ref` (a tag or a commit) names in `repository`."""
        if COMMIT.match(ref):
            return ref
        key = f"{repository} {ref}"
        cache = self._cache()
        if self.offline:
            if key not in cache:
                raise UpstreamUnavailable(f"{repository}: tag '{ref}' is not in the cache and --offline forbids asking")
            return str(cache[key])
        url = apply_mirrors(repository, self.mirrors)
        process.require_tool("git", "install git (apt-get install git)")
        result = process.run(
            ["git", "ls-remote", "--tags", url, f"refs/tags/{ref}", f"refs/tags/{ref}^{{}}"],
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
            timeout=120,
        )
        if result.returncode != 0:
            raise UpstreamUnavailable(f"{url}: git ls-remote failed: {result.tail()}")
        refs: dict[str, str] = {}
        for line in result.stdout.splitlines():
            sha, _, name = line.partition("\t")
            refs[name] = sha
        commit = refs.get(f"refs/tags/{ref}^{{}}") or refs.get(f"refs/tags/{ref}")
        if commit is None:
            raise BuilderError(f"{url}: has no tag '{ref}'", hint="fix the recipe's refs")
        cache[key] = commit
        self.cache_file.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.cache_file, json.dumps(cache, indent=1, sort_keys=True) + "\n")
        return commit
