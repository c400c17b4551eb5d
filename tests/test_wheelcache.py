"""The wheel cache (unit) and publishing to a real pypiserver (integration)."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.build.wheelcache import WheelCache, publish
from builder.errors import UpstreamUnavailable
from builder.upstream.http import HttpClient
from builder.upstream.index import IndexClient
from tests.standins import Index, make_wheel, sha256

KEY = "sha256:" + "ab" * 32


def test_put_then_get(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "built", "standin-ext", "1.0.0", "cp311-cp311-linux_x86_64")
    cache = WheelCache(tmp_path / "cache")
    assert cache.get(KEY) is None
    stored = cache.put(KEY, [wheel], {"recipe": "standin-ext", "version": "1.0.0"})
    again = cache.get(KEY)
    assert again is not None and again == stored
    assert [p.name for p in again.wheels] == [wheel.name]
    assert again.meta == {"key": KEY, "recipe": "standin-ext", "version": "1.0.0"}
    assert sha256(again.wheels[0]) == sha256(wheel)
    assert not [p for p in (tmp_path / "cache" / "wheels").iterdir() if p.name.startswith(".")]


def test_a_damaged_entry_is_a_miss(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "built", "standin-ext", "1.0.0", "cp311-cp311-linux_x86_64")
    cache = WheelCache(tmp_path / "cache")
    stored = cache.put(KEY, [wheel], {})
    stored.wheels[0].write_bytes(b"not the wheel")
    assert cache.get(KEY) is None


def test_nothing_to_cache_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no wheels"):
        WheelCache(tmp_path).put(KEY, [], {})


@pytest.mark.integration
def test_publish_to_a_pep503_index(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "built", "standin-ext", "1.0.0", "cp311-cp311-linux_x86_64")
    with Index.serve(tmp_path / "index") as index:
        http = HttpClient(tmp_path / "http-cache")
        publish(http, (wheel,), f"http://127.0.0.1:{index.port}/")
        publish(http, (wheel,), f"http://127.0.0.1:{index.port}/")  # a second runner publishing the same wheel
        offered = IndexClient(http).files(index.url, "standin-ext")
    assert [(f.filename, f.sha256) for f in offered] == [(wheel.name, sha256(wheel))]


@pytest.mark.integration
def test_publish_failure_is_an_error(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "built", "standin-ext", "1.0.0", "cp311-cp311-linux_x86_64")
    with pytest.raises(UpstreamUnavailable) as caught:
        publish(HttpClient(tmp_path / "http-cache"), (wheel,), "http://127.0.0.1:9/")
    assert caught.value.exit_code == 3
    assert caught.value.message.startswith(f"http://127.0.0.1:9/: cannot upload {wheel.name} (")
