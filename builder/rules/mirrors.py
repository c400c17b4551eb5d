"""Where a build fetches what the catalogue names: git repositories and images through mirrors."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping


def apply_mirrors(url: str, mirrors: Mapping[str, str]) -> str:
    """Rewrite `url` through the first mirror whose source prefix it starts with."""
    for source, destination in mirrors.items():
        if url.startswith(source):
            return destination + url[len(source) :]
    return url


def mirrored(ref: str, mirrors: Mapping[str, str]) -> str:
    """`ref` (registry/repo[:tag|@digest]) as pulled through a mirror of its registry, if one is set."""
    registry, _, rest = ref.partition("/")
    target = mirrors.get(registry)
    if target is None:
        return ref
    return f"{target.split('://', 1)[-1].rstrip('/')}/{rest}"


def plain_http(registry: str) -> bool:
    """Whether a registry is spoken to over plain HTTP: an explicit http://, or a loopback host
    (127.0.0.0/8, localhost, ::1), as docker and cosign treat it."""
    if registry.startswith("http://"):
        return True
    hostport = registry.split("://", 1)[-1].split("/", 1)[0]
    host = hostport[1:].split("]", 1)[0] if hostport.startswith("[") else hostport.rsplit(":", 1)[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
