"""The fault-injecting index in tests/faults.py does what it says, checked with urllib alone."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.faults import JSON_TYPE, UNDECODABLE, FaultyIndex, faulty_index, normalize, project_of
from tests.standins import make_wheel, sha256

pytestmark = pytest.mark.integration

TINY = "tiny-1.0-py3-none-any.whl"  # four bytes, not a zip: only its name and bytes matter here
ACCEPT_JSON = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    url: str

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def anchors(self) -> list[tuple[str, str]]:
        """(href, text) of each anchor."""
        return re.findall(r'<a href="([^"]*)">([^<]*)</a>', self.text)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: object,
        code: int,
        msg: str,
        headers: object,
        newurl: str,
    ) -> urllib.request.Request | None:
        return None


def get(
    url: str, *, method: str = "GET", accept: str | None = None, follow: bool = True, timeout: float = 10
) -> Answer:
    """One request; an HTTP error status is an answer too, not an exception."""
    request = urllib.request.Request(url, method=method, headers={"Accept": accept} if accept else {})
    opener = urllib.request.build_opener() if follow else urllib.request.build_opener(_NoRedirects())
    try:
        with opener.open(request, timeout=timeout) as response:
            return Answer(response.status, dict(response.headers), response.read(), response.url)
    except urllib.error.HTTPError as error:
        with contextlib.closing(error):
            return Answer(error.code, dict(error.headers), error.read(), error.url)


@pytest.fixture
def wheels(tmp_path: Path) -> Path:
    directory = tmp_path / "wheels"
    make_wheel(directory, "torch", "2.8.0", "cp310-cp310-linux_aarch64")
    make_wheel(directory, "torch", "2.8.0", "cp312-cp312-linux_x86_64")
    make_wheel(directory, "Foo_Bar", "1.0", "py3-none-any")
    make_wheel(directory, "numpy", "2.0.0", "cp310-cp310-linux_aarch64")
    (directory / TINY).write_bytes(b"abcd")
    (directory / "README.txt").write_text("not a distribution\n")
    return directory


@pytest.fixture
def index(wheels: Path) -> Iterator[FaultyIndex]:
    with faulty_index(wheels) as served:
        yield served


def torch_files(wheels: Path) -> list[Path]:
    return sorted(wheels.glob("torch-*.whl"))


# ---------------------------------------------------------------- the normal index


def test_names_normalize_as_pep_503_says() -> None:
    assert normalize("Foo__Bar.baz-Qux") == "foo-bar-baz-qux"
    assert project_of("Foo_Bar-1.0-py3-none-any.whl") == "foo-bar"
    assert project_of("foo.bar-1.0.tar.gz") == "foo-bar"
    assert project_of("README.txt") is None
    assert project_of(UNDECODABLE) is None


def test_a_project_page_lists_its_wheels_with_hashes(index: FaultyIndex, wheels: Path) -> None:
    answer = get(index.url + "torch/")
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "text/html"
    assert int(answer.headers["Content-Length"]) == len(answer.body)
    expected = [(f"/packages/{path.name}#sha256={sha256(path)}", path.name) for path in torch_files(wheels)]
    assert answer.anchors() == expected
    for href, name in answer.anchors():
        served = get(f"http://127.0.0.1:{index.port}{href.split('#')[0]}")
        assert served.status == 200
        assert served.body == (wheels / name).read_bytes()
        assert hashlib.sha256(served.body).hexdigest() == href.split("#sha256=")[1]


def test_names_normalize_and_unknown_projects_are_404(index: FaultyIndex) -> None:
    assert [text for _, text in get(index.url + "foo-bar/").anchors()] == ["Foo_Bar-1.0-py3-none-any.whl"]
    moved = get(index.url + "Foo_Bar/", follow=False)
    assert (moved.status, moved.headers["Location"]) == (301, "/simple/foo-bar/")
    assert get(index.url + "Foo_Bar/").status == 200  # urllib follows it
    assert get(index.url + "nothing-here/").status == 404
    assert get(f"http://127.0.0.1:{index.port}/packages/README.txt").status == 200
    assert get(f"http://127.0.0.1:{index.port}/packages/absent.whl").status == 404
    assert get(f"http://127.0.0.1:{index.port}/packages/..%2Fwheels").status == 404


def test_the_root_page_lists_projects(index: FaultyIndex) -> None:
    answer = get(index.url)
    assert answer.anchors() == [(f"/simple/{name}/", name) for name in ("foo-bar", "numpy", "tiny", "torch")]


def test_head_answers_like_get_without_a_body(index: FaultyIndex) -> None:
    full = get(index.url + "torch/")
    head = get(index.url + "torch/", method="HEAD")
    assert (head.status, head.body) == (200, b"")
    assert head.headers["Content-Length"] == str(len(full.body))
    assert head.headers["Content-Type"] == "text/html"
    assert get(index.url + "nothing-here/", method="HEAD").status == 404


def test_every_request_is_recorded_in_order(index: FaultyIndex) -> None:
    get(index.url + "torch/")
    get(index.url + "numpy/?x=1")
    get(index.url + "absent/", method="HEAD")
    assert index.requests == ["/simple/torch/", "/simple/numpy/?x=1", "/simple/absent/"]
    assert index.hits[-1] == ("127.0.0.1", "HEAD", "/simple/absent/")


# ---------------------------------------------------------------- page faults


def test_status(index: FaultyIndex) -> None:
    index.fault("torch", "status")
    answer = get(index.url + "torch/")
    assert answer.status == 500
    assert b"injected fault" in answer.body
    index.fault("torch", "status", code=429)
    assert get(index.url + "torch/").status == 429
    assert get(index.url + "numpy/").status == 200  # one project's page only


def test_flaky_fails_the_first_times_then_answers(index: FaultyIndex) -> None:
    index.fault("torch", "flaky")
    assert [get(index.url + "torch/").status for _ in range(4)] == [503, 503, 200, 200]
    index.fault("torch", "flaky", code=502, times=1)  # replacing a fault starts its count again
    assert [get(index.url + "torch/").status for _ in range(2)] == [502, 200]


def test_hang_times_a_client_out(index: FaultyIndex) -> None:
    index.fault("torch", "hang")
    started = time.monotonic()
    with pytest.raises((TimeoutError, urllib.error.URLError)) as caught:
        get(index.url + "torch/", timeout=0.5)
    if isinstance(caught.value, urllib.error.URLError):
        assert isinstance(caught.value.reason, TimeoutError)
    assert 0.5 <= time.monotonic() - started < 3
    assert index.requests == ["/simple/torch/"]  # the request was read


def test_drip_sends_a_byte_per_interval(index: FaultyIndex, wheels: Path) -> None:
    index.fault(f"file:{TINY}", "drip", interval=0.2)
    started = time.monotonic()
    answer = get(f"http://127.0.0.1:{index.port}/packages/{TINY}")
    elapsed = time.monotonic() - started
    assert (answer.status, answer.body) == (200, b"abcd")
    assert answer.headers["Content-Length"] == "4"
    assert 0.6 <= elapsed < 3


def test_drip_outlasts_a_read_timeout_on_a_page(index: FaultyIndex) -> None:
    index.fault("torch", "drip", interval=1.0)
    request = urllib.request.Request(index.url + "torch/")
    with urllib.request.urlopen(request, timeout=0.3) as response:  # the headers come at once
        assert response.status == 200
        assert int(response.headers["Content-Length"]) > 100
        with pytest.raises(TimeoutError):
            response.read()


def test_empty(index: FaultyIndex) -> None:
    index.fault("torch", "empty")
    answer = get(index.url + "torch/")
    assert (answer.status, answer.headers["Content-Type"], answer.headers["Content-Length"]) == (200, "text/html", "0")
    assert answer.body == b""


def test_garbage_is_4_kib_of_seeded_bytes_with_nuls(index: FaultyIndex) -> None:
    index.fault("torch", "garbage")
    first, second = get(index.url + "torch/"), get(index.url + "torch/")
    assert (first.status, first.headers["Content-Type"]) == (200, "text/html")
    assert len(first.body) == 4096
    assert b"\0" in first.body
    assert first.body == second.body
    index.fault("torch", "garbage", seed=7)
    assert get(index.url + "torch/").body != first.body


def test_truncated_html_ends_inside_an_href(index: FaultyIndex, wheels: Path) -> None:
    whole = get(index.url + "torch/").text
    index.fault("torch", "truncated")
    answer = get(index.url + "torch/")
    assert answer.status == 200
    assert int(answer.headers["Content-Length"]) == len(answer.body)  # honest length, cut HTML
    text = answer.text
    assert whole.startswith(text)
    tail = text[text.rfind('<a href="') + len('<a href="') :]
    assert tail and '"' not in tail and "<" not in tail
    assert len(answer.anchors()) == len(torch_files(wheels)) - 1  # the earlier anchors are whole


def test_short_body_closes_after_half(index: FaultyIndex) -> None:
    whole = get(index.url + "torch/").body
    index.fault("torch", "short-body")
    with urllib.request.urlopen(index.url + "torch/", timeout=5) as response:
        assert int(response.headers["Content-Length"]) == len(whole)
        with pytest.raises(http.client.IncompleteRead) as caught:
            response.read()
    assert caught.value.partial == whole[: len(whole) // 2]


def test_bad_filename_undecodable(index: FaultyIndex) -> None:
    index.fault("torch", "bad-filename")
    answer = get(index.url + "torch/")
    assert answer.status == 200
    [(href, text)] = answer.anchors()
    assert text == UNDECODABLE
    assert href.split("#")[0] == f"/packages/{UNDECODABLE}"
    assert get(f"http://127.0.0.1:{index.port}/packages/{UNDECODABLE}").status == 404
    with pytest.raises(UnicodeDecodeError):
        urllib.parse.unquote(UNDECODABLE, errors="strict")


def test_bad_filename_another_projects_wheel(index: FaultyIndex, wheels: Path) -> None:
    index.fault("torch", "bad-filename", variant="other-project")
    [(href, text)] = get(index.url + "torch/").anchors()
    assert project_of(text) not in (None, "torch")
    assert href == f"/packages/{text}#sha256={sha256(wheels / text)}"
    index.fault("torch", "bad-filename", variant="other-project", keep=True)  # with the right wheels as well
    names = [text for _, text in get(index.url + "torch/").anchors()]
    assert names == [*(path.name for path in torch_files(wheels)), text]


def test_redirect_to_another_host_that_answers(index: FaultyIndex) -> None:
    index.fault("torch", "redirect")
    answer = get(index.url + "torch/", follow=False)
    assert answer.status == 302
    assert answer.headers["Location"] == f"http://127.0.0.2:{index.port}/simple/torch/"
    followed = get(index.url + "torch/")
    assert followed.status == 200
    assert followed.url == f"http://127.0.0.2:{index.port}/simple/torch/"
    assert followed.body == get(index.other_url + "torch/").body
    assert [host for host, _, _ in index.hits[-3:]] == ["127.0.0.1", "127.0.0.2", "127.0.0.2"]
    index.fault("torch", "redirect", host="localhost", status=307)
    answer = get(index.url + "torch/?q", follow=False)
    assert (answer.status, answer.headers["Location"]) == (307, f"http://localhost:{index.port}/simple/torch/?q")


def test_fallback_redirects_like_pypiserver_to_a_public_index(index: FaultyIndex, tmp_path: Path) -> None:
    public = tmp_path / "public"
    elsewhere = make_wheel(public, "torch", "2.8.0", "cp312-cp312-manylinux_2_28_x86_64", payload="# public\n")
    make_wheel(public, "numpy", "2.0.0", "cp312-cp312-manylinux_2_28_x86_64")
    index.fault("torch", "fallback", public=public)
    answer = get(index.url + "torch/", follow=False)
    assert answer.status == 303
    assert answer.headers["Location"] == f"http://127.0.0.2:{index.port}/public/simple/torch/"
    followed = get(index.url + "torch/")
    assert followed.status == 200
    [(href, text)] = followed.anchors()
    assert (href, text) == (f"/public/packages/{elsewhere.name}#sha256={sha256(elsewhere)}", elsewhere.name)
    served = get(f"http://127.0.0.2:{index.port}/public/packages/{elsewhere.name}")
    assert served.body == elsewhere.read_bytes()
    assert get(f"http://127.0.0.2:{index.port}/public/simple/absent/").status == 404
    index.fault("torch", "fallback")  # no public wheels: the public index does not have it either
    assert get(index.url + "torch/").status == 404
    index.fault("torch", "fallback", target="https://pypi.org/simple")
    assert get(index.url + "torch/", follow=False).headers["Location"] == "https://pypi.org/simple/torch/"


def test_wrong_hash_lists_hashes_the_bytes_do_not_match(index: FaultyIndex, wheels: Path) -> None:
    index.fault("torch", "wrong-hash")
    anchors = get(index.url + "torch/").anchors()
    assert [text for _, text in anchors] == [path.name for path in torch_files(wheels)]
    for href, name in anchors:
        listed = href.split("#sha256=")[1]
        assert re.fullmatch(r"[0-9a-f]{64}", listed)
        served = get(f"http://127.0.0.1:{index.port}{href.split('#')[0]}").body
        assert served == (wheels / name).read_bytes()  # the bytes are right, the listing lies
        assert hashlib.sha256(served).hexdigest() != listed


def test_json_when_asked_for(index: FaultyIndex, wheels: Path) -> None:
    assert get(index.url + "torch/", accept=ACCEPT_JSON).headers["Content-Type"] == "text/html"  # "ok" is HTML
    index.fault("torch", "json")
    answer = get(index.url + "torch/", accept=ACCEPT_JSON)
    assert answer.headers["Content-Type"] == JSON_TYPE
    data = json.loads(answer.body)
    assert data["meta"] == {"api-version": "1.0"}
    assert data["name"] == "torch"
    assert [(item["filename"], item["url"], item["hashes"]["sha256"]) for item in data["files"]] == [
        (path.name, f"/packages/{path.name}", sha256(path)) for path in torch_files(wheels)
    ]
    assert get(index.url + "torch/").headers["Content-Type"] == "text/html"
    assert get(index.url + "torch/", accept=f"text/html, {JSON_TYPE};q=0.5").headers["Content-Type"] == "text/html"


# ---------------------------------------------------------------- file faults


def test_file_faults(index: FaultyIndex, wheels: Path) -> None:
    [wheel, _] = torch_files(wheels)
    url = f"http://127.0.0.1:{index.port}/packages/{wheel.name}"
    index.fault(f"file:{wheel.name}", "status", code=403)
    assert get(url).status == 403
    assert get(index.url + "torch/").status == 200  # the page is not the file

    index.fault(f"file:{wheel.name}", "wrong-bytes")
    served = get(url).body
    assert len(served) == wheel.stat().st_size
    assert hashlib.sha256(served).hexdigest() != sha256(wheel)

    index.fault(f"file:{wheel.name}", "short-body")
    with urllib.request.urlopen(url, timeout=5) as response, pytest.raises(http.client.IncompleteRead):
        response.read()

    index.fault(f"file:{wheel.name}", "hang")
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        get(url, timeout=0.5)

    index.clear()
    assert get(url).body == wheel.read_bytes()


def test_faults_are_checked_when_set(index: FaultyIndex) -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        index.fault("torch", "explode")
    with pytest.raises(ValueError, match="unknown fault"):
        index.fault("file:x.whl", "truncated")  # a page fault
    with pytest.raises(ValueError, match="unknown fault"):
        index.fault("torch", "wrong-bytes")  # a file fault
    with pytest.raises(TypeError, match="takes"):
        index.fault("torch", "drip", seconds=1)
    with pytest.raises(ValueError, match="variant"):
        index.fault("torch", "bad-filename", variant="nonsense")


def test_faults_given_up_front_and_cleared(wheels: Path) -> None:
    with faulty_index(wheels, faults={"Torch": "status", "numpy": "empty"}) as index:
        assert get(index.url + "torch/").status == 500
        assert get(index.url + "numpy/").body == b""
        assert get(index.other_url + "torch/").status == 200  # no fault on the other host
        index.clear()
        assert get(index.url + "torch/").status == 200


# ---------------------------------------------------------------- shutting down


def test_leaving_returns_promptly_with_hanging_and_dripping_clients(wheels: Path) -> None:
    outcomes: list[BaseException | bytes] = []

    def client(url: str) -> None:
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                outcomes.append(response.read())
        except Exception as error:
            outcomes.append(error)

    with faulty_index(wheels) as index:
        index.fault("torch", "hang")
        index.fault("numpy", "drip", interval=2.0)
        clients = [
            threading.Thread(target=client, args=(index.url + name + "/",), daemon=True) for name in ("torch", "numpy")
        ]
        for thread in clients:
            thread.start()
        deadline = time.monotonic() + 5
        while len(index.requests) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sorted(index.requests) == ["/simple/numpy/", "/simple/torch/"]
        time.sleep(0.2)  # the drip's headers are out; both handlers wait
        started = time.monotonic()
    assert time.monotonic() - started < 2
    for thread in clients:
        thread.join(5)
        assert not thread.is_alive()
    assert len(outcomes) == 2
    assert all(isinstance(outcome, (http.client.HTTPException, OSError)) for outcome in outcomes)
