"""The fast path's decisions as data: content keys, SBOM keys, and whether a recorded image in an OCI
layout and its SBOMs still stand (files only; the registry side runs in tests/test_stack_e2e.py)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from builder.build.fastpath import (
    content_key,
    context_digest,
    fast_result,
    image_missing,
    reusable_sbom,
    sbom_key,
    site_files,
)

KEY = {
    "lock_checksum": "sha256:" + "1" * 64,
    "context": "sha256:" + "2" * 64,
    "engine": "docker",
    "platform": "linux/arm64",
    "tags": ["r.lan/team/maie:orin", "r.lan/team/maie:orin-111111111111"],
    "stored": "registry",
}


def test_the_content_key_names_everything_that_makes_the_image() -> None:
    key = content_key(**KEY)  # type: ignore[arg-type]
    assert key == content_key(**KEY)  # type: ignore[arg-type]
    changed = {
        "lock_checksum": "sha256:" + "3" * 64,
        "context": "sha256:" + "4" * 64,
        "engine": "buildah",
        "platform": "linux/amd64",
        "tags": ["other.lan/team/maie:orin", "other.lan/team/maie:orin-111111111111"],
        "stored": "oci-layout",
    }
    for name, value in changed.items():
        assert content_key(**{**KEY, name: value}) != key, name  # type: ignore[arg-type]


def test_the_context_digest_covers_names_and_bytes() -> None:
    files = {"Dockerfile": b"FROM x\n", "app/serve.py": b"print(1)\n"}
    digest = context_digest(files)
    assert digest == context_digest(dict(reversed(list(files.items()))))  # order of writing does not matter
    assert digest != context_digest({**files, "app/serve.py": b"print(2)\n"})
    assert digest != context_digest({"Dockerfile": b"FROM x\n", "app/serve2.py": b"print(1)\n"})
    assert context_digest({"a": b"bc"}) != context_digest({"ab": b"c"})  # names and bytes are delimited


def test_sbom_keys_follow_the_digest_the_lock_and_the_site_settings(tmp_path: Path) -> None:
    site = site_files(tmp_path)
    assert site == {"sbom/policy.yaml": None, "sbom/syft.yaml": None}
    key = sbom_key("sha256:" + "a" * 64, "sha256:" + "1" * 64, site)
    assert key != sbom_key("sha256:" + "b" * 64, "sha256:" + "1" * 64, site)
    assert key != sbom_key("sha256:" + "a" * 64, "sha256:" + "2" * 64, site)
    (tmp_path / "sbom").mkdir()
    (tmp_path / "sbom" / "syft.yaml").write_text("parallelism: 2\n")
    assert key != sbom_key("sha256:" + "a" * 64, "sha256:" + "1" * 64, site_files(tmp_path))


def _blob(layout: Path, data: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def _layout(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    layout = tmp_path / "oci"
    config, layer = _blob(layout, b'{"architecture": "arm64"}'), _blob(layout, b"layer bytes")
    manifest = json.dumps({"schemaVersion": 2, "config": config, "layers": [layer]}).encode()
    entry = _blob(layout, manifest)
    name = {"org.opencontainers.image.ref.name": "orin-111111111111"}
    (layout / "index.json").write_text(json.dumps({"manifests": [{**entry, "annotations": name}]}))
    key = content_key(**{**KEY, "stored": "oci-layout"})  # type: ignore[arg-type]
    previous = {
        "content-key": key,
        "image": {
            "digest": entry["digest"],
            "tags": ["maie:orin", "maie:orin-111111111111"],
            "stored": "oci-layout",
            "oci-layout": str(layout),
        },
    }
    return layout, previous


def test_an_image_in_an_oci_layout_stands_while_the_layout_holds_it(tmp_path: Path) -> None:
    layout, previous = _layout(tmp_path)
    key = previous["content-key"]
    assert image_missing(previous, key, None, insecure=False) is None
    assert image_missing(None, key, None, insecure=False) == "no earlier build in this output directory"
    assert image_missing(previous, "sha256:" + "0" * 64, None, insecure=False) == (
        "its inputs changed since the last build"
    )
    config = layout / "blobs" / "sha256" / hashlib.sha256(b'{"architecture": "arm64"}').hexdigest()
    config.write_bytes(b"{}")  # a blob of another size: the layout was damaged
    assert "lost the blob" in str(image_missing(previous, key, None, insecure=False))
    config.unlink()
    assert "lost the blob" in str(image_missing(previous, key, None, insecure=False))
    (layout / "index.json").write_text(json.dumps({"manifests": []}))
    assert "no longer lists" in str(image_missing(previous, key, None, insecure=False))
    assert image_missing({"content-key": key}, key, None, insecure=False) == (
        "the last result.json does not say where its image is"
    )


def test_recorded_sboms_are_reused_only_unchanged_and_under_the_same_key(tmp_path: Path) -> None:
    spdx, cdx = tmp_path / "sbom.spdx.json", tmp_path / "sbom.cdx.json"
    spdx.write_text('{"spdxVersion": "SPDX-2.3"}')
    cdx.write_text('{"bomFormat": "CycloneDX"}')
    digest = {path: "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest() for path in (spdx, cdx)}
    key = "sha256:" + "5" * 64
    sbom: dict[str, Any] = {
        "key": key,
        "paths": {"spdx": str(spdx), "cyclonedx": str(cdx)},
        "files": {"spdx": {"digest": digest[spdx]}, "cyclonedx": {"digest": digest[cdx]}},
    }
    assert reusable_sbom({"sbom": sbom}, key) == sbom
    assert reusable_sbom({"sbom": sbom}, "sha256:" + "6" * 64) is None
    assert reusable_sbom({}, key) is None
    cdx.write_text('{"bomFormat": "CycloneDX", "edited": true}')
    assert reusable_sbom({"sbom": sbom}, key) is None
    cdx.unlink()
    assert reusable_sbom({"sbom": sbom}, key) is None


@pytest.mark.parametrize("signed", [True, False])
def test_a_fast_result_runs_nothing_and_says_when_the_image_was_built(signed: bool) -> None:
    previous: dict[str, Any] = {
        "target": "orin",
        "started": "2026-12-01T10:00:00Z",
        "stages": [{"name": "runtime+app"}],
        "wheel_cache": {"vllm": {"cache_hit": False}},
        "sbom": {"key": "k"},
        "fast-path": False,
    }
    if signed:
        previous["signature"], previous["attestations"] = {"where": "sha256-1.sig"}, []
    result = fast_result(previous, "2026-12-02T10:00:00Z", 0.04)
    assert result["fast-path"] is True and result["stages"] == [] and result["wheel_cache"] == {}
    assert result["built"] == "2026-12-01T10:00:00Z" and result["started"] == "2026-12-02T10:00:00Z"
    assert not {"sbom", "signature", "attestations"} & set(result)  # added back only once checked
    assert fast_result(result, "2026-12-03T10:00:00Z", 0.04)["built"] == "2026-12-01T10:00:00Z"
