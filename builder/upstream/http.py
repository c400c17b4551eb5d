"""The one door to the network: one session, deadlines, retries with backoff, an on-disk cache.

The cache keeps each answer (a body with its ETag / Last-Modified, and "not here" answers: a 404 or
a redirect, with where it pointed) and revalidates on the next request; it is what `--offline`
reads. Entries are written to a temporary file and renamed into place. Every request has a total
deadline, retries included, so a server that drips bytes cannot hold a command forever.
Credentials are applied per host and never appear in a URL builder stores, prints or caches.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from builder.errors import HttpError, InternalError, UpstreamUnavailable
from builder.fsutil import default_cache_dir, write_atomic_bytes

DEFAULT_TIMEOUT = (10.0, 30.0)  # connect, read (between two bytes); BUILDER_HTTP_TIMEOUT sets both
DEADLINE_FACTOR = 4  # a whole request, retries included, gets this many read timeouts at most
RETRIES = 3
REDIRECTS = frozenset({301, 302, 303, 307, 308})
CACHED_STATUSES = frozenset({200, 404} | REDIRECTS)
CHUNK = 64 * 1024
DOWNLOAD_DEADLINE = 1800.0  # seconds for a whole wheel, however slowly it arrives


@dataclass(frozen=True)
class Response:
    url: str
    status: int
    headers: dict[str, str]
    body: bytes
    from_cache: bool = False

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    @property
    def location(self) -> str | None:
        """Where a redirect points, as an absolute URL."""
        from urllib.parse import urljoin

        target = self.headers.get("location")
        return urljoin(self.url, target) if target else None

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def host_of(url: str) -> str:
    """host[:port] of a URL, without credentials."""
    return urlsplit(url).netloc.rpartition("@")[2]


class HttpClient:
    """GETs with retries and a revalidating disk cache; `offline` serves only from the cache.

    `credentials` maps host[:port] to (user, password) for indexes and registries that need them.
    """

    def __init__(
        self,
        cache_dir: Path | None = None,
        *,
        offline: bool = False,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        credentials: dict[str, tuple[str, str]] | None = None,
    ) -> None:
        self.cache_dir = (cache_dir or default_cache_dir()) / "http"
        self.offline = offline
        if "BUILDER_HTTP_TIMEOUT" in os.environ:
            seconds = float(os.environ["BUILDER_HTTP_TIMEOUT"])
            timeout = (seconds, seconds)
        self.timeout = timeout
        self.deadline = float(os.environ.get("BUILDER_HTTP_DEADLINE", DEADLINE_FACTOR * timeout[1]))
        self.credentials = credentials if credentials is not None else {}  # shared: hosts may be added later
        self.session = requests.Session()
        self.session.trust_env = False  # no ~/.netrc guessing: credentials come from `credentials` only
        self.session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE") or True
        retry = Retry(
            total=RETRIES,
            connect=RETRIES,
            read=RETRIES,
            status=RETRIES,
            backoff_factor=0.2,
            status_forcelist=(500, 502, 503, 504),
            allowed_methods=frozenset({"GET", "HEAD"}),
            raise_on_status=False,
            redirect=False,
        )
        adapter = HTTPAdapter(max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def close(self) -> None:
        self.session.close()

    # -------------------------------------------------------------- cache

    def _entry(self, url: str, accept: str) -> Path:
        key = hashlib.sha256(f"{accept}\n{url}".encode()).hexdigest()
        return self.cache_dir / key[:2] / key

    def _read_cache(self, url: str, accept: str) -> Response | None:
        entry = self._entry(url, accept)
        try:
            meta = json.loads(entry.with_suffix(".json").read_text())
            body = entry.with_suffix(".body").read_bytes()
        except (OSError, ValueError):
            return None
        if not isinstance(meta, dict) or hashlib.sha256(body).hexdigest() != meta.get("sha256"):
            return None  # a torn or tampered entry is a miss, never data
        return Response(meta["url"], int(meta.get("status", 200)), meta["headers"], body, from_cache=True)

    def store(self, url: str, accept: str, response: Response) -> None:
        """Keep a response fetched outside `get` (e.g. after an auth exchange) for --offline."""
        self._write_cache(url, accept, response)

    def _write_cache(self, url: str, accept: str, response: Response) -> None:
        entry = self._entry(url, accept)
        keep = {k: v for k, v in response.headers.items() if k in ("content-type", "etag", "last-modified", "location")}
        meta = {
            "url": response.url,
            "status": response.status,
            "headers": keep,
            "sha256": hashlib.sha256(response.body).hexdigest(),
        }
        for suffix, data in ((".body", response.body), (".json", json.dumps(meta, sort_keys=True).encode())):
            path = entry.with_suffix(suffix)
            if path.is_dir() and not path.is_symlink():  # damage in builder's own cache: recover, as from any other
                shutil.rmtree(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic_bytes(path, data)

    # -------------------------------------------------------------- requests

    def get(
        self,
        url: str,
        *,
        accept: str = "*/*",
        headers: dict[str, str] | None = None,
        cache: bool = True,
        answers: frozenset[int] = frozenset({200}),
    ) -> Response:
        """GET `url`; statuses in `answers` are returned (and cached), any other is an HttpError.
        Redirects are returned as they are when `answers` holds them, else followed (to any host)."""
        cached = self._read_cache(url, accept) if cache else None
        if self.offline:
            if cached is None or cached.status not in answers:
                raise UpstreamUnavailable(f"{url}: not in the cache and --offline forbids fetching it")
            return cached
        request_headers = {"Accept": accept, **(headers or {})}
        if cached is not None and cached.status == 200:
            if "etag" in cached.headers:
                request_headers["If-None-Match"] = cached.headers["etag"]
            if "last-modified" in cached.headers:
                request_headers["If-Modified-Since"] = cached.headers["last-modified"]
        response = self._send(url, request_headers, follow=not answers & REDIRECTS)
        if response.status == 304 and cached is not None:
            return cached
        if response.status >= 500:
            raise HttpError(url, f"still failing after {RETRIES} retries (HTTP {response.status})", response.status)
        if response.status not in answers:
            raise HttpError(url, f"HTTP {response.status}", response.status)
        if cache and response.status in CACHED_STATUSES:
            self._write_cache(url, accept, response)
        return response

    def sha256_of(self, url: str) -> str:
        """Download `url` and hash it (for index pages that give no hash), streaming, uncached."""
        if self.offline:
            raise UpstreamUnavailable(f"{url}: the index gives no hash and --offline forbids downloading it")
        digest = hashlib.sha256()
        self._send(url, {}, sink=digest.update, follow=True)  # files may live on another host (a CDN)
        return digest.hexdigest()

    def stream(self, url: str, headers: dict[str, str], sink: Callable[[bytes], object]) -> None:
        """GET a large body chunk by chunk into `sink`, uncached (image layers); an error status raises."""
        if self.offline:
            raise UpstreamUnavailable(f"{url}: --offline forbids fetching it")
        self._send(url, headers, sink=sink, follow=True)

    def request(
        self, method: str, url: str, headers: dict[str, str] | None = None, body: bytes | None = None
    ) -> Response:
        """One uncached request (registry auth dances, HEADs, uploads); errors still name the URL."""
        if self.offline:
            raise UpstreamUnavailable(f"{url}: --offline forbids fetching it")
        return self._send(url, headers or {}, method, body, follow=method in ("GET", "HEAD"))

    def post_file(self, url: str, fields: dict[str, str], field: str, path: Path) -> Response:
        """POST a multipart form carrying one file (the upload API pypiserver and twine speak)."""
        if self.offline:
            raise UpstreamUnavailable(f"{url}: --offline forbids uploading to it")
        try:
            with path.open("rb") as content:
                raw = self.session.post(
                    url,
                    data=fields,
                    files={field: (path.name, content, "application/octet-stream")},
                    timeout=self.timeout,
                    auth=self.credentials.get(host_of(url)),
                    allow_redirects=False,
                )
        except requests.exceptions.RequestException as exc:
            raise HttpError(url, f"cannot upload {path.name} ({_reason(exc)})") from None
        return Response(url, raw.status_code, {k.lower(): v for k, v in raw.headers.items()}, raw.content)

    def _send(
        self,
        url: str,
        headers: dict[str, str],
        method: str = "GET",
        body: bytes | None = None,
        sink: Callable[[bytes], object] | None = None,
        follow: bool = False,
    ) -> Response:
        # A whole file may take long on a slow link; a page may not. Both stop at some point.
        deadline = time.monotonic() + (max(self.deadline, DOWNLOAD_DEADLINE) if sink is not None else self.deadline)
        for attempt in range(RETRIES + 1):
            try:
                return self._send_once(url, headers, method, body, deadline, sink, follow)
            except HttpError as error:
                # urllib3 retries connects and statuses itself; a body cut short is retried here.
                if not error.retryable or attempt == RETRIES or time.monotonic() >= deadline:
                    raise
                time.sleep(0.2 * 2**attempt)
        raise InternalError("retry loop ended without an answer")

    def _send_once(
        self,
        url: str,
        headers: dict[str, str],
        method: str,
        body: bytes | None,
        deadline: float,
        sink: Callable[[bytes], object] | None,
        follow: bool,
    ) -> Response:
        try:
            raw = self.session.request(
                method,
                url,
                headers=headers,
                data=body,
                timeout=self.timeout,
                allow_redirects=follow,
                stream=True,
                auth=self.credentials.get(host_of(url)),
            )
            with raw:
                chunks: list[bytes] = []
                if raw.is_redirect:  # requests has read a redirect's (short) body already, to find its target
                    chunks.append(raw.content)
                # read1 returns whatever has arrived, so a server that drips bytes meets the deadline.
                while not raw.is_redirect and (chunk := raw.raw.read1(CHUNK, decode_content=True)):
                    if time.monotonic() > deadline:
                        raise HttpError(url, f"did not finish within its {self.deadline:g} s deadline")
                    if sink is not None:
                        sink(chunk)
                    else:
                        chunks.append(chunk)
                content = b"".join(chunks)
        except (requests.exceptions.ChunkedEncodingError, urllib3.exceptions.ProtocolError):
            raise HttpError(url, "truncated response (the connection closed mid-body)", retryable=True) from None
        except urllib3.exceptions.ReadTimeoutError:
            raise HttpError(url, f"timed out (limit {self.timeout[1]:g} s between two bytes)") from None
        except requests.exceptions.RetryError as exc:
            raise HttpError(url, f"still failing after {RETRIES} retries ({_reason(exc)})") from None
        except requests.exceptions.Timeout:
            raise HttpError(url, f"timed out after {RETRIES} retries (limit {self.timeout[1]:g} s)") from None
        except requests.exceptions.ConnectionError as exc:
            if _is_timeout(exc):  # urllib3 reports a read timeout inside a body as a connection error
                raise HttpError(url, f"timed out after {RETRIES} retries (limit {self.timeout[1]:g} s)") from None
            raise HttpError(url, f"cannot connect ({_reason(exc)})") from None
        except requests.exceptions.RequestException as exc:
            raise HttpError(url, _reason(exc)) from None
        expected = raw.headers.get("content-length")
        received = len(content) if sink is None else None
        if method == "GET" and expected and expected.isdigit() and received is not None and int(expected) != received:
            raise HttpError(url, f"truncated response ({received} of {expected} bytes)", retryable=True)
        if sink is not None and raw.status_code >= 400:
            raise HttpError(url, f"HTTP {raw.status_code}", raw.status_code)
        headers_out = {key.lower(): value for key, value in raw.headers.items()}
        return Response(raw.url or url, raw.status_code, headers_out, content)


def _is_timeout(exc: Exception) -> bool:
    """Whether a requests error is, underneath, urllib3's timeout (directly or after its retries)."""
    cause = exc.args[0] if exc.args else None
    cause = getattr(cause, "reason", cause)
    # urllib3 keeps NewConnectionError a subclass of ConnectTimeoutError for compatibility: a refusal is not a timeout.
    return isinstance(cause, urllib3.exceptions.TimeoutError) and not isinstance(
        cause, urllib3.exceptions.NewConnectionError
    )


def _reason(exc: Exception) -> str:
    text = str(exc.args[0]) if exc.args else str(exc)
    for marker in ("Caused by ", "Max retries exceeded"):
        if marker in text:
            text = text.split(marker, 1)[-1]
    return text.strip("() ")[:200]
