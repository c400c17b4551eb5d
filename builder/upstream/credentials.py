"""Credentials in index and registry URLs: taken out of every URL builder keeps, applied per host.

`http://user:s3cret@host/simple/` becomes the URL `http://host/simple/` (what locks, renders, caches,
logs and messages carry) and the credential (host, user, password), which reaches the network only
through the HTTP client's auth, a netrc file uv reads, or a build secret.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

Credential = tuple[str, str]  # user, password


def split_credentials(url: str) -> tuple[str, str, Credential | None]:
    """(the URL without credentials, its host[:port], the credential or None); a bare host[:port]
    (an image mirror) works too."""
    if "://" not in url:
        clean, host, credential = split_credentials(f"scheme://{url}")
        return clean.removeprefix("scheme://"), host, credential
    parts = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if not at:
        return url, parts.netloc, None
    user, _, password = userinfo.partition(":")
    clean = urlunsplit((parts.scheme, hostport, parts.path, parts.query, parts.fragment))
    return clean, hostport, (unquote(user), unquote(password))


def collect(urls: Iterable[str]) -> tuple[list[str], dict[str, Credential]]:
    """The URLs without credentials, and the credentials by host."""
    clean, found = [], {}
    for url in urls:
        without, host, credential = split_credentials(url)
        clean.append(without)
        if credential is not None:
            found[host] = credential
    return clean, found


def netrc_text(credentials: Mapping[str, Credential]) -> str:
    lines = []
    for host, (user, password) in sorted(credentials.items()):
        machine = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        lines.append(f"machine {machine} login {user} password {password}")
    return "\n".join(lines) + "\n"


@contextmanager
def netrc_file(credentials: Mapping[str, Credential], also: Path | None = None) -> Iterator[Path | None]:
    """A netrc holding `credentials` (mode 0600) for the life of the block, then removed; `also`, a
    netrc of the user's, is copied in after them (the first entry for a machine wins)."""
    if not credentials:
        yield also
        return
    handle, name = tempfile.mkstemp(prefix="builder-netrc-")
    path = Path(name)
    try:
        os.fchmod(handle, 0o600)
        with os.fdopen(handle, "w") as stream:
            stream.write(netrc_text(credentials))
            if also is not None:
                stream.write(also.read_text())
        yield path
    finally:
        path.unlink(missing_ok=True)
