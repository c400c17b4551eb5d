"""Reading PEP 691 (JSON) and PEP 503 (HTML) simple indexes: which files a project offers."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from urllib.parse import urldefrag, urljoin, urlsplit

from packaging.utils import canonicalize_name

from builder.errors import HttpError, UpstreamUnavailable
from builder.rules.wheels import IndexFile
from builder.upstream.http import HttpClient

ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1"
JSON_TYPE = "application/vnd.pypi.simple.v1+json"


def project_url(index_url: str, name: str) -> str:
    return urljoin(index_url if index_url.endswith("/") else index_url + "/", f"{canonicalize_name(name)}/")


def parse_json_page(text: str, page_url: str) -> list[IndexFile]:
    data = json.loads(text)
    files = []
    for item in data.get("files", []):
        url, _ = urldefrag(urljoin(page_url, item["url"]))
        files.append(
            IndexFile(
                filename=item["filename"],
                url=url,
                sha256=(item.get("hashes") or {}).get("sha256"),
                requires_python=item.get("requires-python"),
                yanked=bool(item.get("yanked")),
            )
        )
    return files


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.anchors: list[tuple[dict[str, str | None], str]] = []
        self._current: dict[str, str | None] | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._current, self._text = dict(attrs), ""

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._current is not None:
            self.anchors.append((self._current, self._text.strip()))
            self._current = None


def parse_html_page(text: str, page_url: str) -> list[IndexFile]:
    parser = _Links()
    parser.feed(text)
    files = []
    for attrs, label in parser.anchors:
        href = attrs.get("href")
        if not href:
            continue
        url, fragment = urldefrag(urljoin(page_url, href))
        sha256 = fragment.split("=", 1)[1] if fragment.startswith("sha256=") else None
        filename = label or url.rsplit("/", 1)[-1]
        files.append(
            IndexFile(
                filename=filename,
                url=url,
                sha256=sha256,
                requires_python=attrs.get("data-requires-python"),
                yanked="data-yanked" in attrs,
            )
        )
    return files


class IndexClient:
    def __init__(self, http: HttpClient) -> None:
        self.http = http

    def files(self, index_url: str, name: str) -> list[IndexFile]:
        """Every file the index offers for `name`; an unknown project is an empty list."""
        url = project_url(index_url, name)
        try:
            response = self.http.get(url, accept=ACCEPT)
        except HttpError as error:
            if error.status == 404:
                return []
            raise
        if urlsplit(response.url).netloc != urlsplit(url).netloc:
            # A package pinned to this index must not quietly come from wherever it redirects.
            raise UpstreamUnavailable(f"{url}: the index redirected to another host ({response.url}); refusing it")
        try:
            if response.content_type == JSON_TYPE:
                return parse_json_page(response.text(), response.url)
            return parse_html_page(response.text(), response.url)
        except (ValueError, KeyError, TypeError) as exc:
            raise UpstreamUnavailable(f"{url}: not a valid simple-index page ({exc})") from None
