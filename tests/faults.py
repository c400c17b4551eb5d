"""A PEP 503 index on loopback that fails, hangs or lies on demand, for testing the index client.

`faulty_index(wheels)` serves every wheel (and sdist) in `wheels` as a simple index, like `standins.Index`
does with pypiserver, but in-process and standard library only, so that a test can set, per project page
or per file, how the server misbehaves:

    with faulty_index(tmp_path / "wheels") as index:
        index.fault("torch", "drip", interval=0.5)
        index.fault("file:torch-2.8.0-cp310-cp310-linux_aarch64.whl", "wrong-bytes")
        ...

The same server also listens on `other_host` (127.0.0.2 by default, loopback too) at the same port. That
listener always answers normally: faults apply only to requests to 127.0.0.1, so a redirect to the other
host reaches a host that does answer, with the same content, as a pypiserver fallback would.
See `PAGE_KINDS` and `FILE_KINDS` for the faults and their parameters.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import http.server
import json
import random
import re
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast
from urllib.parse import quote, unquote, urlsplit

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "text/html"
FILE_TYPE = "application/octet-stream"

# kind -> its parameters and their defaults (None: computed when the server answers)
PAGE_KINDS: dict[str, dict[str, object]] = {
    "ok": {},
    "status": {"code": 500},
    "flaky": {"code": 503, "times": 2},
    "hang": {},
    "drip": {"interval": 2.0},
    "empty": {},
    "garbage": {"seed": 503, "size": 4096},
    "truncated": {},
    "short-body": {},
    "bad-filename": {"variant": "undecodable", "keep": False},
    "redirect": {"host": None, "status": 302},
    "fallback": {"target": None, "public": None},
    "wrong-hash": {},
    "json": {},
}
FILE_KINDS: dict[str, dict[str, object]] = {
    "ok": {},
    "status": {"code": 500},
    "flaky": {"code": 503, "times": 2},
    "hang": {},
    "drip": {"interval": 2.0},
    "empty": {},
    "garbage": {"seed": 503, "size": 4096},
    "short-body": {},
    "redirect": {"host": None, "status": 302},
    "wrong-bytes": {},
}
BAD_FILENAME_VARIANTS = ("undecodable", "other-project")
UNDECODABLE = "%FF%FE-garbage.whl"


def normalize(name: str) -> str:
    """PEP 503: lower case, runs of `-`, `_` and `.` become one `-`."""
    return re.sub(r"[-_.]+", "-", name).lower()


def project_of(filename: str) -> str | None:
    """The normalized distribution name of a wheel or sdist file name; None for anything else."""
    if filename.endswith(".whl"):
        parts = filename[: -len(".whl")].split("-")
        return normalize(parts[0]) if len(parts) in (5, 6) and parts[0] else None
    for suffix in (".tar.gz", ".zip"):
        stem = filename[: -len(suffix)]
        if filename.endswith(suffix) and "-" in stem:
            return normalize(stem.rsplit("-", 1)[0])
    return None


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class _Fault:
    kind: str
    params: dict[str, object]

    def get(self, name: str) -> object:
        return self.params[name]

    def number(self, name: str) -> float:
        return float(cast("float", self.params[name]))


OK = _Fault("ok", {})


@dataclass
class _Reply:
    status: int
    content_type: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def _text(status: int, message: str) -> _Reply:
    return _Reply(status, "text/plain; charset=utf-8", (message + "\n").encode())


NOT_FOUND = _text(404, "Not Found")


class _State:
    """What the handlers of both listeners share; every mutable part under `lock`."""

    def __init__(self, wheels: Path, other_host: str) -> None:
        self.wheels = wheels
        self.other_host = other_host
        self.port = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.faults: dict[str, _Fault] = {}
        self.counts: dict[str, int] = {}
        self.requests: list[str] = []
        self.hits: list[tuple[str, str, str]] = []
        self.connections: dict[socket.socket, threading.Thread] = {}
        self.errors: list[BaseException] = []

    # -------------------------------------------------------------- faults

    def set_fault(self, key: str, kind: str, params: dict[str, object]) -> None:
        is_file = key.startswith("file:")
        kinds = FILE_KINDS if is_file else PAGE_KINDS
        if kind not in kinds:
            raise ValueError(
                f"unknown fault {kind!r} for {'a file' if is_file else 'a project page'}; one of {sorted(kinds)}"
            )
        unknown = set(params) - set(kinds[kind])
        if unknown:
            raise TypeError(f"fault {kind!r} takes {sorted(kinds[kind])}, not {sorted(unknown)}")
        if kind == "bad-filename" and params.get("variant", "undecodable") not in BAD_FILENAME_VARIANTS:
            raise ValueError(f"bad-filename variant must be one of {BAD_FILENAME_VARIANTS}")
        key = key if is_file else normalize(key)
        with self.lock:
            self.faults[key] = _Fault(kind, {**kinds[kind], **params})
            self.counts.pop(key, None)

    def clear(self) -> None:
        with self.lock:
            self.faults.clear()
            self.counts.clear()

    def fault_for(self, key: str) -> _Fault:
        """The fault for `key`, counting the request (a spent "flaky" fault answers as "ok")."""
        with self.lock:
            fault = self.faults.get(key, OK)
            seen = self.counts[key] = self.counts.get(key, 0) + 1
        if fault.kind == "flaky" and seen > fault.number("times"):
            return OK
        return fault

    def public_dirs(self) -> list[Path]:
        with self.lock:
            dirs = [fault.params["public"] for fault in self.faults.values() if fault.kind == "fallback"]
        return list(dict.fromkeys(Path(cast("str", d)) for d in dirs if d is not None))

    # -------------------------------------------------------------- content

    @staticmethod
    def files(directories: list[Path], project: str | None = None) -> list[Path]:
        """Distribution files in `directories` (of `project`, if given), by file name; the first directory wins."""
        found: dict[str, Path] = {}
        for directory in directories:
            if not directory.is_dir():
                continue
            for path in sorted(directory.iterdir()):
                owner = project_of(path.name)
                if path.is_file() and owner is not None and (project is None or owner == project):
                    found.setdefault(path.name, path)
        return [found[name] for name in sorted(found)]


def _render(title: str, anchors: list[tuple[str, str]]) -> str:
    """A PEP 503 page, laid out as pypiserver lays it out; `anchors` are (href, text), hrefs already quoted."""
    lines = [
        "<!DOCTYPE html>",
        "<html>",
        "  <head>",
        '    <meta name="pypi:repository-version" content="1.0">',
        f"    <title>{html.escape(title)}</title>",
        "  </head>",
        "  <body>",
        f"    <h1>{html.escape(title)}</h1>",
        *(f'    <a href="{html.escape(href)}">{html.escape(text)}</a><br>' for href, text in anchors),
        "  </body>",
        "</html>",
    ]
    return "\n".join(lines) + "\n"


def _html(page: str) -> _Reply:
    return _Reply(200, HTML_TYPE, page.encode())


def _wants_json(accept: str) -> bool:
    """PEP 691 negotiation: JSON when the client ranks it at least as high as any HTML it accepts."""
    json_q, html_q = 0.0, 0.0
    for part in accept.split(","):
        media, *options = (piece.strip() for piece in part.split(";"))
        q = 1.0
        for option in options:
            if option.startswith("q="):
                with contextlib.suppress(ValueError):
                    q = float(option[2:])
        media = media.lower()
        if media == JSON_TYPE:
            json_q = max(json_q, q)
        elif media in ("application/vnd.pypi.simple.v1+html", "text/html", "text/*", "*/*"):
            html_q = max(html_q, q)
    return json_q > 0 and json_q >= html_q


def _truncate_in_href(page: str) -> str:
    """The page cut in the middle of its last anchor's href: every earlier anchor is whole, the last is not."""
    start = page.rfind('<a href="') + len('<a href="')
    end = page.index('"', start)
    return page[: start + max(1, (end - start) // 2)]


def _project_page(state: _State, name: str, fault: _Fault, accept: str) -> _Reply:
    files = state.files([state.wheels], name)
    anchors = [(f"/packages/{quote(path.name)}", path.name, _digest(path.read_bytes())) for path in files]
    if fault.kind == "bad-filename":
        if fault.get("variant") == "undecodable":
            bad = (f"/packages/{UNDECODABLE}", UNDECODABLE, _digest(b"garbage"))
        else:
            others = [path for path in state.files([state.wheels]) if project_of(path.name) != name]
            other = others[0].name if others else "someone_else-1.0-py3-none-any.whl"
            bytes_ = others[0].read_bytes() if others else b""
            bad = (f"/packages/{quote(other)}", other, _digest(bytes_))
        anchors = [*anchors, bad] if fault.get("keep") else [bad]
    elif not anchors:
        return NOT_FOUND
    if fault.kind == "wrong-hash":
        anchors = [(href, text, _digest(b"not " + digest.encode())) for href, text, digest in anchors]
    if fault.kind == "json" and _wants_json(accept):
        body = {
            "meta": {"api-version": "1.0"},
            "name": name,
            "files": [{"filename": text, "url": href, "hashes": {"sha256": digest}} for href, text, digest in anchors],
        }
        return _Reply(200, JSON_TYPE, json.dumps(body, indent=1).encode())
    page = _render(f"Links for {name}", [(f"{href}#sha256={digest}", text) for href, text, digest in anchors])
    if fault.kind == "truncated":
        page = _truncate_in_href(page)
    return _html(page)


def _index_page(files: list[Path], prefix: str) -> _Reply:
    names = sorted({cast("str", project_of(path.name)) for path in files})
    return _html(_render("Simple index", [(f"{prefix}/simple/{name}/", name) for name in names]))


def _public_page(state: _State, name: str) -> _Reply:
    files = state.files(state.public_dirs(), name)
    if not files:
        return NOT_FOUND
    anchors = [(f"/public/packages/{quote(p.name)}#sha256={_digest(p.read_bytes())}", p.name) for p in files]
    return _html(_render(f"Links for {name}", anchors))


def _file(directories: list[Path], quoted: str) -> _Reply:
    try:
        name = unquote(quoted, errors="strict")
    except UnicodeDecodeError:
        return NOT_FOUND
    if not name or "/" in name or name in (".", ".."):
        return NOT_FOUND
    for directory in directories:
        path = directory / name
        if path.is_file():
            return _Reply(200, FILE_TYPE, path.read_bytes())
    return NOT_FOUND


class _Server(http.server.ThreadingHTTPServer):
    block_on_close = False  # the context manager closes connections and joins their threads itself
    daemon_threads = True

    def __init__(self, address: tuple[str, int], state: _State, *, primary: bool) -> None:
        self.state = state
        self.primary = primary
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the host name up (socket.getfqdn), which can be slow; none is needed.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: object, client_address: object) -> None:
        error = sys.exc_info()[1]
        if error is not None and not isinstance(error, OSError):  # a client going away is no error
            with self.state.lock:
                self.state.errors.append(error)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60  # an idle kept-alive connection does not hold a thread forever
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.state.lock:
            self.server.state.connections[self.connection] = threading.current_thread()

    def finish(self) -> None:
        with self.server.state.lock:
            self.server.state.connections.pop(self.connection, None)
        super().finish()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)

    # -------------------------------------------------------------- routing

    def _answer(self, *, head: bool) -> None:
        state = self.server.state
        with state.lock:
            state.requests.append(self.path)
            state.hits.append((self.server.server_name, self.command, self.path))
        path = urlsplit(self.path).path
        key, is_page = self._key(path)
        fault = state.fault_for(key) if key is not None and self.server.primary else OK
        kind = fault.kind
        if kind == "hang":
            state.stopping.wait()
            self.close_connection = True
            return
        if kind in ("status", "flaky"):
            code = int(fault.number("code"))
            reply = _text(code, f"{code} {self.responses.get(code, ('',))[0]} (injected fault)".strip())
        elif kind == "empty":
            reply = _Reply(200, HTML_TYPE if is_page else FILE_TYPE, b"")
        elif kind == "garbage":
            data = bytearray(random.Random(cast("int", fault.get("seed"))).randbytes(int(fault.number("size"))))
            data[1::512] = bytes(len(data[1::512]))  # NUL bytes for certain, whatever the seed
            reply = _Reply(200, HTML_TYPE if is_page else FILE_TYPE, bytes(data))
        elif kind == "redirect":
            host = fault.get("host") or state.other_host
            reply = _text(int(fault.number("status")), "Redirecting")
            reply.headers["Location"] = f"http://{host}:{state.port}{self.path}"
        elif kind == "fallback":
            name = path.rstrip("/").rsplit("/", 1)[-1]
            target = cast("str | None", fault.get("target")) or f"http://{state.other_host}:{state.port}/public/simple/"
            reply = _text(303, "See Other")
            reply.headers["Location"] = f"{target.rstrip('/')}/{name}/"
        else:
            reply = self._normal(path, fault)
            if kind == "wrong-bytes" and reply.status == 200:
                body = reply.body or b"\0"
                reply.body = body[:-1] + bytes([body[-1] ^ 0xFF])  # same length, different bytes
        if kind == "drip":
            self._send(reply, head=head, interval=fault.number("interval"))
        else:
            self._send(reply, head=head, short=kind == "short-body")

    def _key(self, path: str) -> tuple[str | None, bool]:
        """The fault key a path answers to ("<project>" or "file:<name>"), and whether it is a project page."""
        parts = path.split("/")
        if len(parts) in (3, 4) and parts[1] == "simple" and parts[2] and parts[3:] in ([], [""]):
            return normalize(parts[2]), True
        if len(parts) == 3 and parts[1] == "packages" and parts[2]:
            return "file:" + unquote(parts[2]), False
        return None, False

    def _normal(self, path: str, fault: _Fault) -> _Reply:
        state = self.server.state
        parts = path.split("/")
        if path == "/simple/":
            return _index_page(state.files([state.wheels]), "")
        if path == "/public/simple/":
            return _index_page(state.files(state.public_dirs()), "/public")
        if len(parts) == 4 and parts[1:3] == ["public", "packages"]:
            return _file(state.public_dirs(), parts[3])
        if len(parts) == 5 and parts[1:3] == ["public", "simple"] and parts[3] and parts[4] == "":
            return _public_page(state, normalize(parts[3]))
        if len(parts) == 3 and parts[1] == "packages":
            return _file([state.wheels], parts[2])
        if len(parts) in (3, 4) and parts[1] == "simple" and parts[2]:
            name = parts[2]
            if normalize(name) != name or len(parts) == 3:  # as pypiserver does: 301 to the normalized page
                reply = _text(301, "Moved Permanently")
                reply.headers["Location"] = f"/simple/{normalize(name)}/"
                return reply
            if parts[3] == "":
                return _project_page(state, name, fault, self.headers.get("Accept", ""))
        return NOT_FOUND

    # -------------------------------------------------------------- writing

    def _send(self, reply: _Reply, *, head: bool, short: bool = False, interval: float | None = None) -> None:
        """The reply with its full Content-Length; its body whole, half of it (`short`) or a byte per `interval`."""
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if short or interval is not None:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if head:
            return
        if interval is not None:
            for index in range(len(reply.body)):
                if self.server.state.stopping.wait(interval):
                    return
                self.wfile.write(reply.body[index : index + 1])
            return
        self.wfile.write(reply.body[: len(reply.body) // 2] if short else reply.body)


@dataclass
class FaultyIndex:
    url: str  # "http://127.0.0.1:PORT/simple/"
    port: int
    requests: list[str]  # every request's path (with its query), in order, on either host
    hits: list[tuple[str, str, str]] = field(default_factory=list)  # (host, method, path) of each request
    other_url: str = ""  # the same index on the other host, where no fault applies
    _state: _State | None = field(default=None, repr=False)

    def fault(self, project: str, kind: str, **params: object) -> None:
        """Set (or replace) the fault of one project's page, or of one file as "file:<filename>"."""
        assert self._state is not None
        self._state.set_fault(project, kind, params)

    def clear(self) -> None:
        """Every page and file answers normally again."""
        assert self._state is not None
        self._state.clear()


def _listen(state: _State, other_host: str) -> list[_Server]:
    """The primary listener on 127.0.0.1 and a free port, and one on `other_host` at the same port."""
    last: OSError | None = None
    for _ in range(20):
        primary = _Server(("127.0.0.1", 0), state, primary=True)
        port = primary.server_address[1]
        try:
            return [primary, _Server((other_host, port), state, primary=False)]
        except OSError as error:
            primary.server_close()
            last = error
    raise RuntimeError(f"could not listen on 127.0.0.1 and {other_host} at one port: {last}")


@contextlib.contextmanager
def faulty_index(
    wheels: Path, *, faults: dict[str, str] | None = None, other_host: str = "127.0.0.2"
) -> Iterator[FaultyIndex]:
    """Serve `wheels` as a simple index with faults; on exit, hanging and dripping connections end at once."""
    state = _State(wheels, other_host)
    servers = _listen(state, other_host)
    state.port = port = servers[0].server_address[1]
    index = FaultyIndex(
        url=f"http://127.0.0.1:{port}/simple/",
        port=port,
        requests=state.requests,
        hits=state.hits,
        other_url=f"http://{other_host}:{port}/simple/",
        _state=state,
    )
    for project, kind in (faults or {}).items():
        index.fault(project, kind)
    threads = [
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True) for server in servers
    ]
    for thread in threads:
        thread.start()
    try:
        yield index
    finally:
        state.stopping.set()  # hanging and dripping handlers return
        for server in servers:
            server.shutdown()
        with state.lock:
            connections = dict(state.connections)
        for connection in connections:  # kept-alive connections waiting for a next request end too
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + 2
        for thread in [*threads, *connections.values()]:
            thread.join(max(0.0, deadline - time.monotonic()))
        for server in servers:
            server.server_close()
    if state.errors:
        raise RuntimeError(f"the faulty index itself failed: {state.errors[0]!r}") from state.errors[0]
