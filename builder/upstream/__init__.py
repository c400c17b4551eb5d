"""The outside world: the one HTTP client, indexes, registries, git, pip configuration and uv."""
