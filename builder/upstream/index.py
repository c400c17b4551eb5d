"""Reading PEP 691 (JSON) and PEP 503 (HTML) simple indexes: which files a project offers.

An index answers in one of three ways. The project's page: its files. "Not here": a 404, or a
redirect to another host (pypiserver's default configuration sends names it lacks to the public
index) — for a package pinned to this index that means "not on this index", never "take it from
wherever the redirect points". Anything else is a broken answer and an error naming the URL: an
empty body, bytes that are not a page, HTML cut mid-tag, a file name that is not a distribution
of the project.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import unquote, urldefrag, urljoin

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from builder.errors import UpstreamUnavailable
from builder.rules.wheels import IndexFile
from builder.upstream.http import REDIRECTS, HttpClient, host_of

ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1"
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
ANSWERS = frozenset({200, 404} | REDIRECTS)
SAME_HOST_HOPS = 5


@dataclass(frozen=True)
class IndexPage:
    """What an index says about one project: its files, or why it has none."""

    url: str
    files: tuple[IndexFile, ...]
    absent: str | None = None  # why the project is not on this index (HTTP 404, a redirect away)


def plain_file_url(url: str, filename: str) -> str:
    """`url` with its last segment spelled as the file name when it only percent-encodes it
    (`torch-2.8.0%2Bcu126-...whl`): locks, and pylock readers, see the file name in the URL."""
    head, _, last = url.rpartition("/")
    return f"{head}/{filename}" if last != filename and unquote(last) == filename else url


def project_url(index_url: str, name: str) -> str:
    return urljoin(index_url if index_url.endswith("/") else index_url + "/", f"{canonicalize_name(name)}/")


class BrokenPage(ValueError):
    """A page that is not a simple-index page."""


def parse_json_page(text: str, page_url: str) -> list[IndexFile]:
    data = json.loads(text)
    if not isinstance(data, dict) or not isinstance(data.get("files", []), list):
        raise BrokenPage("not a PEP 691 project page")
    files = []
    for item in data.get("files", []):
        url, _ = urldefrag(urljoin(page_url, item["url"]))
        files.append(
            IndexFile(
                filename=item["filename"],
                url=plain_file_url(url, item["filename"]),
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

    @property
    def cut_short(self) -> bool:
        """The text ended inside a tag or inside an anchor: the page was cut."""
        return self.rawdata.lstrip().startswith("<") or self._current is not None


def parse_html_page(text: str, page_url: str) -> list[IndexFile]:
    parser = _Links()
    parser.feed(text)
    if parser.cut_short:
        raise BrokenPage("the HTML ends in the middle of a tag or link (cut short?)")
    files = []
    for attrs, label in parser.anchors:
        href = attrs.get("href")
        if not href:
            continue
        url, fragment = urldefrag(urljoin(page_url, href))
        sha256 = fragment.split("=", 1)[1] if fragment.startswith("sha256=") else None
        filename = label or unquote(url.rsplit("/", 1)[-1])
        files.append(
            IndexFile(
                filename=filename,
                url=plain_file_url(url, filename),
                sha256=sha256,
                requires_python=attrs.get("data-requires-python"),
                yanked="data-yanked" in attrs,
            )
        )
    return files


def check_files(files: list[IndexFile], name: str) -> None:
    """Every wheel and sdist listed must be a distribution of `name`; other files (.egg, .exe) are ignored."""
    wanted = canonicalize_name(name)
    for file in files:
        try:
            if file.filename.endswith(".whl"):
                found = parse_wheel_filename(file.filename)[0]
            elif file.filename.endswith((".tar.gz", ".zip")):
                found = parse_sdist_filename(file.filename)[0]
            else:
                continue
        except (InvalidWheelFilename, InvalidSdistFilename):
            raise BrokenPage(f"lists '{file.filename}', which is not a distribution file name") from None
        if found != wanted:
            raise BrokenPage(f"lists '{file.filename}', a distribution of {found}, not of {wanted}")


class IndexClient:
    def __init__(self, http: HttpClient) -> None:
        self.http = http

    def page(self, index_url: str, name: str) -> IndexPage:
        """What the index offers for `name`. Redirects on the index's own host are followed; one to
        another host is never followed and means the project is not on this index."""
        url = project_url(index_url, name)
        target = url
        for _ in range(SAME_HOST_HOPS):
            response = self.http.get(target, accept=ACCEPT, answers=ANSWERS)
            if response.status == 404:
                return IndexPage(url, (), "not on this index (HTTP 404)")
            if response.status in REDIRECTS:
                location = response.location or ""
                if host_of(location) != host_of(url):
                    return IndexPage(url, (), f"not on this index (it redirects to another host, {host_of(location)})")
                target = location
                continue
            return IndexPage(url, tuple(self._files(response.body, response.content_type, response.url, name)))
        raise UpstreamUnavailable(f"{url}: more than {SAME_HOST_HOPS} redirects")

    def files(self, index_url: str, name: str) -> list[IndexFile]:
        """Every file the index offers for `name`; a project it does not have is an empty list."""
        return list(self.page(index_url, name).files)

    @staticmethod
    def _files(body: bytes, content_type: str, url: str, name: str) -> list[IndexFile]:
        try:
            if not body.strip():
                raise BrokenPage("an empty answer")
            if b"\0" in body:
                raise BrokenPage("binary data, not a page")
            text = body.decode("utf-8")
            files = parse_json_page(text, url) if content_type == JSON_TYPE else parse_html_page(text, url)
            check_files(files, name)
        except UnicodeDecodeError:
            raise UpstreamUnavailable(f"{url}: not a simple-index page (the answer is not UTF-8 text)") from None
        except BrokenPage as exc:
            raise UpstreamUnavailable(f"{url}: not a simple-index page ({exc})") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise UpstreamUnavailable(f"{url}: not a simple-index page ({type(exc).__name__}: {exc})") from None
        return files
