"""The one door to the network: one session, timeouts, retries with backoff, an on-disk cache.

The cache keeps each response body with its ETag / Last-Modified, revalidates on the next request,
and is what `--offline` reads. Entries are written to a temporary file and renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from builder.errors import HttpError, InternalError, UpstreamUnavailable
from builder.fsutil import default_cache_dir, write_atomic_bytes

DEFAULT_TIMEOUT = (10.0, 60.0)  # connect, read; BUILDER_HTTP_TIMEOUT sets both
RETRIES = 3


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

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


class HttpClient:
    """GETs with retries and a revalidating disk cache; `offline` serves only from the cache."""

    def __init__(
        self, cache_dir: Path | None = None, *, offline: bool = False, timeout: tuple[float, float] = DEFAULT_TIMEOUT
    ) -> None:
        self.cache_dir = (cache_dir or default_cache_dir()) / "http"
        self.offline = offline
        if "BUILDER_HTTP_TIMEOUT" in os.environ:
            seconds = float(os.environ["BUILDER_HTTP_TIMEOUT"])
            timeout = (seconds, seconds)
        self.timeout = timeout
        self.session = requests.Session()
        retry = Retry(
            total=RETRIES,
            connect=RETRIES,
            read=RETRIES,
            status=RETRIES,
            backoff_factor=0.2,
            status_forcelist=(500, 502, 503, 504),
            allowed_methods=frozenset({"GET", "HEAD"}),
            raise_on_status=False,
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
        if hashlib.sha256(body).hexdigest() != meta.get("sha256"):
            return None  # a torn or tampered entry is a miss, never data
        return Response(meta["url"], 200, meta["headers"], body, from_cache=True)

    def store(self, url: str, accept: str, response: Response) -> None:
        """Keep a response fetched outside `get` (e.g. after an auth exchange) for --offline."""
        self._write_cache(url, accept, response)

    def _write_cache(self, url: str, accept: str, response: Response) -> None:
        entry = self._entry(url, accept)
        entry.parent.mkdir(parents=True, exist_ok=True)
        keep = {k: v for k, v in response.headers.items() if k in ("content-type", "etag", "last-modified")}
        meta = {"url": response.url, "headers": keep, "sha256": hashlib.sha256(response.body).hexdigest()}
        write_atomic_bytes(entry.with_suffix(".body"), response.body)
        write_atomic_bytes(entry.with_suffix(".json"), json.dumps(meta, sort_keys=True).encode())

    # -------------------------------------------------------------- requests

    def get(
        self, url: str, *, accept: str = "*/*", headers: dict[str, str] | None = None, cache: bool = True
    ) -> Response:
        cached = self._read_cache(url, accept) if cache else None
        if self.offline:
            if cached is None:
                raise UpstreamUnavailable(f"{url}: not in the cache and --offline forbids fetching it")
            return cached
        request_headers = {"Accept": accept, **(headers or {})}
        if cached is not None:
            if "etag" in cached.headers:
                request_headers["If-None-Match"] = cached.headers["etag"]
            if "last-modified" in cached.headers:
                request_headers["If-Modified-Since"] = cached.headers["last-modified"]
        response = self._send(url, request_headers)
        if response.status == 304 and cached is not None:
            return cached
        if response.status >= 500:
            raise HttpError(url, f"still failing after {RETRIES} retries (HTTP {response.status})", response.status)
        if response.status >= 400:
            raise HttpError(url, f"HTTP {response.status}", response.status)
        if cache:
            self._write_cache(url, accept, response)
        return response

    def sha256_of(self, url: str) -> str:
        """Download `url` and hash it (for index pages that give no hash), streaming, uncached."""
        if self.offline:
            raise UpstreamUnavailable(f"{url}: the index gives no hash and --offline forbids downloading it")
        digest = hashlib.sha256()
        try:
            with self.session.get(url, stream=True, timeout=self.timeout) as raw:
                if raw.status_code >= 400:
                    raise HttpError(url, f"HTTP {raw.status_code}", raw.status_code)
                for chunk in raw.iter_content(1 << 20):
                    digest.update(chunk)
        except requests.exceptions.RequestException as exc:
            raise HttpError(url, _reason(exc)) from None
        return digest.hexdigest()

    def request(
        self, method: str, url: str, headers: dict[str, str] | None = None, body: bytes | None = None
    ) -> Response:
        """One uncached request (registry auth dances, HEADs, uploads); errors still name the URL."""
        if self.offline:
            raise UpstreamUnavailable(f"{url}: --offline forbids fetching it")
        return self._send(url, headers or {}, method, body)

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
                )
        except requests.exceptions.RequestException as exc:
            raise HttpError(url, f"cannot upload {path.name} ({_reason(exc)})") from None
        return Response(raw.url, raw.status_code, {k.lower(): v for k, v in raw.headers.items()}, raw.content)

    def _send(self, url: str, headers: dict[str, str], method: str = "GET", body: bytes | None = None) -> Response:
        for attempt in range(RETRIES + 1):
            try:
                return self._send_once(url, headers, method, body)
            except HttpError as error:
                # urllib3 retries connects and statuses itself; a body cut short is retried here.
                if not error.retryable or attempt == RETRIES:
                    raise
                time.sleep(0.2 * 2**attempt)
        raise InternalError("retry loop ended without an answer")

    def _send_once(self, url: str, headers: dict[str, str], method: str, body: bytes | None) -> Response:
        try:
            raw = self.session.request(
                method, url, headers=headers, data=body, timeout=self.timeout, allow_redirects=True
            )
            body = raw.content
        except requests.exceptions.ChunkedEncodingError:
            raise HttpError(url, "truncated response (the connection closed mid-body)", retryable=True) from None
        except requests.exceptions.RetryError as exc:
            raise HttpError(url, f"still failing after {RETRIES} retries ({_reason(exc)})") from None
        except requests.exceptions.Timeout:
            raise HttpError(url, f"timed out after {RETRIES} retries (limit {self.timeout[1]:g} s)") from None
        except requests.exceptions.ConnectionError as exc:
            if "timed out" in str(exc):
                raise HttpError(url, f"timed out after {RETRIES} retries (limit {self.timeout[1]:g} s)") from None
            raise HttpError(url, f"cannot connect ({_reason(exc)})") from None
        except requests.exceptions.RequestException as exc:
            raise HttpError(url, _reason(exc)) from None
        expected = raw.headers.get("content-length")
        if expected is not None and method == "GET" and expected.isdigit() and int(expected) != len(body):
            raise HttpError(url, f"truncated response ({len(body)} of {expected} bytes)", retryable=True)
        headers_out = {key.lower(): value for key, value in raw.headers.items()}
        return Response(raw.url, raw.status_code, headers_out, body)


def _reason(exc: Exception) -> str:
    text = str(exc.args[0]) if exc.args else str(exc)
    for marker in ("Caused by ", "Max retries exceeded"):
        if marker in text:
            text = text.split(marker, 1)[-1]
    return text.strip("() ")[:200]
