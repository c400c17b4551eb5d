"""`build lock` against an index that fails, hangs or lies (tests/faults.py): a broken answer is an
error naming the URL (exit 3), never "no wheels, so build from source"; "not here" (404, a redirect
to another host) sends a pinned package to its source build; nothing is written on failure."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import FIXTURE
from tests.faults import FaultyIndex, faulty_index
from tests.test_lock import NANO, Sandbox, Upstreams, standard_wheels
from tests.test_lock import upstreams as upstreams  # the fixture, shared with test_lock

pytestmark = pytest.mark.integration


@pytest.fixture
def faulty(
    tmp_path: Path, upstreams: Upstreams, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Sandbox, FaultyIndex]]:
    import shutil

    from tests.standins import Index

    root = tmp_path / "catalogue"
    shutil.copytree(FIXTURE, root)
    monkeypatch.chdir(root)
    monkeypatch.setenv("BUILDER_HTTP_TIMEOUT", "1")  # deadlines of 4 s: the hang and drip cases end quickly
    wheels = tmp_path / "wheels"
    standard_wheels(wheels)
    with Index.serve(wheels) as default, faulty_index(wheels) as lab:
        yield Sandbox(root, wheels, default, upstreams), lab


def lock(sandbox: Sandbox, lab: FaultyIndex, *extra: str) -> tuple[int, list[str], str]:
    result = sandbox.lock("--target", NANO, *extra, index_url=lab.url)
    return result.code, result.errors, result.err


BROKEN = [
    ("status", {"code": 500}, "torch/: still failing after 3 retries (HTTP 500)"),
    ("hang", {}, "torch/: timed out after 3 retries"),
    ("drip", {"interval": 0.5}, "torch/: did not finish within its 4 s deadline"),
    ("empty", {}, "torch/: not a simple-index page (an empty answer)"),
    ("garbage", {}, "torch/: not a simple-index page (binary data, not a page)"),
    ("truncated", {}, "torch/: not a simple-index page (the HTML ends in the middle of a tag or link"),
    ("short-body", {}, "torch/: truncated response"),
    ("bad-filename", {"variant": "undecodable"}, "which is not a distribution file name"),
    ("bad-filename", {"variant": "other-project"}, "not of torch"),
]


@pytest.mark.parametrize(("kind", "params", "message"), BROKEN, ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(BROKEN)])
def test_a_broken_index_answer_is_an_error_naming_the_url(
    faulty: tuple[Sandbox, FaultyIndex], kind: str, params: dict[str, object], message: str
) -> None:
    sandbox, lab = faulty
    lab.fault("torch", kind, **params)
    started = time.monotonic()
    code, errors, err = lock(sandbox, lab)
    assert code == 3, err
    assert len(errors) == 1 and lab.url in errors[0] and message in errors[0], err
    assert time.monotonic() - started < 30  # every request has a deadline
    assert not (sandbox.root / "locks").exists()  # nothing half-written


def test_a_flaky_index_is_tried_again(faulty: tuple[Sandbox, FaultyIndex]) -> None:
    sandbox, lab = faulty
    lab.fault("torch", "flaky", code=503, times=2)
    code, _, err = lock(sandbox, lab)
    assert code == 0, err
    assert sandbox.packages()["torch"]["version"] == "2.8.0"


@pytest.mark.parametrize("kind", ["redirect", "fallback"])
def test_a_redirect_to_another_host_means_not_on_this_index(faulty: tuple[Sandbox, FaultyIndex], kind: str) -> None:
    """fastlib is pinned to the lab index, which redirects it away (as pypiserver's default
    configuration does for names it lacks): its source build is next, never the redirect's wheel."""
    sandbox, lab = faulty
    lab.fault("fastlib", kind)
    code, _, err = lock(sandbox, lab)
    assert code == 0, err
    fastlib = sandbox.packages()["fastlib"]
    assert fastlib["kind"] == "source", fastlib
    assert "not on this index (it redirects to another host, 127.0.0.2:" in fastlib["why"]
    assert not any(path.startswith("/packages/fastlib") for path in lab.requests)  # never downloaded from there


def test_a_redirect_for_a_package_with_no_source_build_is_unsatisfiable(faulty: tuple[Sandbox, FaultyIndex]) -> None:
    sandbox, lab = faulty
    lab.fault("torch", "redirect")
    code, errors, err = lock(sandbox, lab)
    assert code == 2, err
    assert errors[0].startswith(f"stacks/demo.yaml:7:14: error: torch >=2.5 cannot be obtained for {NANO}")
    assert "not on this index (it redirects to another host" in errors[0]


def test_a_404_and_a_redirect_are_cached_for_offline(faulty: tuple[Sandbox, FaultyIndex]) -> None:
    """A lock with a source build (fastlib answered 404) locks again --offline right after."""
    sandbox, lab = faulty
    (sandbox.wheels / "fastlib-1.0.0+cu126-cp310-cp310-linux_aarch64.whl").unlink()
    code, _, err = lock(sandbox, lab)
    assert code == 0, err
    assert sandbox.packages()["fastlib"]["kind"] == "source"
    code, _, err = lock(sandbox, lab, "--offline", "--upgrade")
    assert code == 0, err


def test_bytes_that_do_not_match_the_listed_hash_are_refused(faulty: tuple[Sandbox, FaultyIndex]) -> None:
    sandbox, lab = faulty
    lab.fault("torch", "wrong-hash")
    code, errors, err = lock(sandbox, lab)
    assert code == 3, err
    assert "torch-2.8.0-cp310-cp310-linux_aarch64.whl" in errors[0] and "hash" in errors[0].lower()
    assert not (sandbox.root / "locks").exists()


def test_a_wheel_that_cannot_be_downloaded_is_exit_3_naming_it(faulty: tuple[Sandbox, FaultyIndex]) -> None:
    sandbox, lab = faulty
    lab.fault("file:torch-2.8.0-cp310-cp310-linux_aarch64.whl", "status", code=404)
    code, errors, err = lock(sandbox, lab)
    assert code == 3, err
    assert "torch-2.8.0-cp310-cp310-linux_aarch64.whl" in errors[0]
    assert not (sandbox.root / "locks").exists()
