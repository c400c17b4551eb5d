"""Re-using a recorded syft scan when only the app stage changed (builder.sbom.layered), as data:
real layer tars in an OCI layout, records on disk. The end-to-end check that such SBOMs equal a full
scan's, byte for byte, with real builds and real syft, is in tests/test_stack_e2e.py."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import json
import tarfile
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from builder.errors import CheckFailed, HttpError, ToolFailed
from builder.render.files import app_stage_files
from builder.sbom import layered
from builder.sbom.layered import AppStage, Entry, NotReusable
from builder.sbom.syft import Scan
from builder.upstream.http import HttpClient
from builder.upstream.images import LayoutStore, RegistryStore

APP = AppStage({"/app/serve.py": b"print('hi')\n", "/opt/builder/smoke/runner.py": b"# runner\n"}, "/app")


def tar_layer(members: list[tuple[str, str, bytes]]) -> bytes:
    """A gzipped layer tar of (name, kind, content) members; kind is file, dir or link."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, kind, content in members:
            info = tarfile.TarInfo(name)
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif kind == "link":
                info.type, info.linkname = tarfile.SYMTYPE, content.decode()
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), mtime=0)


def layout_image(tmp_path: Path, layers: list[bytes], labels: dict[str, str] | None = None) -> tuple[LayoutStore, str]:
    """An OCI layout holding one image made of `layers` (bottom first); returns its store and digest."""
    root = tmp_path / "layout"
    (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')

    def put(data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        (root / "blobs" / "sha256" / digest).write_bytes(data)
        return "sha256:" + digest

    diff_ids = ["sha256:" + hashlib.sha256(gzip.decompress(layer)).hexdigest() for layer in layers]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": labels or {}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    config_bytes = json.dumps(config).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": put(config_bytes),
            "size": len(config_bytes),
        },
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": put(layer), "size": len(layer)}
            for layer in layers
        ],
    }
    digest = put(json.dumps(manifest).encode())
    (root / "index.json").write_text(
        json.dumps({"schemaVersion": 2, "manifests": [{"digest": digest, "mediaType": manifest["mediaType"]}]})
    )
    return LayoutStore(root), digest


BASE = tar_layer(
    [("usr/", "dir", b""), ("usr/bin/python3", "file", b"\x7fELF..."), ("etc/os-release", "file", b"ID=debian\n")]
)
DEPS = tar_layer([("opt/venv/lib/pip-23.dist-info/METADATA", "file", b"Name: pip\nVersion: 23\n")])
APP_LAYERS = [
    tar_layer([("app/", "dir", b"")]),  # WORKDIR comes first
    tar_layer(
        [("opt/", "dir", b""), ("opt/builder/", "dir", b""), ("opt/builder/smoke/runner.py", "file", b"# runner\n")]
    ),
    tar_layer([("app/", "dir", b""), ("app/serve.py", "file", b"print('hi')\n")]),
]


def test_a_layer_tar_is_read_with_its_whiteouts_and_file_sums() -> None:
    layer = tar_layer([
        ("app/", "dir", b""), ("app/a.py", "file", b"a"), ("lib/link", "link", b"/usr/lib"),
        ("etc/.wh.gone", "file", b""), ("var/.wh..wh..opq", "file", b""),
    ])  # fmt: skip
    entries = layered.layer_entries(io.BytesIO(layer), "application/vnd.oci.image.layer.v1.tar+gzip", hash_files=True)
    assert entries == [
        Entry("/app", "dir"), Entry("/app/a.py", "file", hashlib.sha256(b"a").hexdigest()), Entry("/lib/link", "link"),
        Entry("/etc/gone", "whiteout"), Entry("/var", "opaque"),
    ]  # fmt: skip
    with pytest.raises(NotReusable, match="zstd"):
        layered.layer_entries(io.BytesIO(layer), "application/vnd.oci.image.layer.v1.tar+zstd", hash_files=False)


def test_the_app_stage_is_the_fewest_top_layers_that_hold_exactly_the_app_files(tmp_path: Path) -> None:
    store, digest = layout_image(tmp_path, [BASE, DEPS, *APP_LAYERS])
    image = layered.read_image(store, digest)
    top_down = layered._top_down(store, image, APP)
    assert layered.app_layer_count(top_down, APP) == 2  # the WORKDIR layer below is left to the lower layers


@pytest.mark.parametrize(
    ("top", "reason"),
    [
        (tar_layer([("app/serve.py", "file", b"print('other')\n")]), "holds more than the app files"),
        (tar_layer([("app/serve.py", "file", b"print('hi')\n"), ("etc/passwd", "file", b"x")]), "holds more"),
        (tar_layer([("app/serve.py", "file", b"print('hi')\n"), ("usr/.wh.bin", "file", b"")]), "holds more"),
        (tar_layer([("app/serve.py", "file", b"print('hi')\n"), ("app/cfg", "link", b"/etc")]), "holds more"),
    ],
    ids=["changed bytes", "another file", "a deletion", "a link"],
)
def test_a_top_layer_with_anything_but_the_app_files_is_not_the_app_stage(
    tmp_path: Path, top: bytes, reason: str
) -> None:
    store, digest = layout_image(tmp_path, [BASE, DEPS, APP_LAYERS[1], top])
    image = layered.read_image(store, digest)
    with pytest.raises(NotReusable, match=reason):
        layered.app_layer_count(layered._top_down(store, image, APP), APP)


def test_a_large_layer_where_the_app_stage_should_be_is_not_downloaded(tmp_path: Path) -> None:
    store, digest = layout_image(tmp_path, [BASE, tar_layer([("big", "file", bytes(range(256)) * 8192)])])
    image = layered.read_image(store, digest)
    small = AppStage({"/app/serve.py": b"x"})
    image.layers[-1]["size"] = 3 << 20  # what the manifest says is what counts
    with pytest.raises(NotReusable, match="above the app files' size"):
        layered.app_layer_count(layered._top_down(store, image, small), small)


def test_app_files_that_replace_or_pass_through_lower_paths_collide() -> None:
    lower: dict[str, str] = {}
    layered.apply_layer(lower, [Entry("/etc/os-release", "file"), Entry("/srv", "link"), Entry("/var/x/y", "file")])
    layered.apply_layer(lower, [Entry("/var/z", "file"), Entry("/var", "opaque"), Entry("/tmp", "dir")])
    assert lower == {"/etc/os-release": "file", "/srv": "link", "/tmp": "dir", "/var/z": "file"}
    layered.apply_layer(lower, [Entry("/var/z", "whiteout")])
    assert "/var/z" not in lower
    assert layered.collisions(APP, lower) == []
    assert layered.collisions(AppStage({"/etc/os-release": b"ID=mine\n"}), lower) == ["/etc/os-release"]
    assert layered.collisions(AppStage({"/srv/app.py": b""}), lower) == ["/srv"]


def _scan(digest: str, config: str, layer: str) -> Scan:
    hexed = digest.removeprefix("sha256:")
    spdx = {"packages": [{"name": "sandbox", "versionInfo": digest, "checksums": [{"checksumValue": hexed}]},
                         {"name": "pip", "comment": f"layerID: {layer}"}]}  # fmt: skip
    cyclonedx = {"metadata": {"component": {"bom-ref": "x", "version": digest},
                              "properties": [{"name": "syft:image:labels:old", "value": "1"}, {"name": "keep", "value": "2"}]}}  # fmt: skip
    syft = {"artifacts": [{"locations": [{"path": "/opt/venv/METADATA", "layerID": layer}]}], "files": []}
    return Scan(spdx, cyclonedx, syft)


def test_a_record_is_rebound_to_the_new_image_and_read_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUILDER_CACHE_DIR", str(tmp_path / "cache"))
    store, digest = layout_image(tmp_path, [BASE, DEPS, *APP_LAYERS])
    image = layered.read_image(store, digest)
    below = image.diff_ids[:-2]
    lower: dict[str, str] = {}
    for layer in image.layers[:-2]:
        layered.apply_layer(lower, layered.read_layer(store, layer, hash_files=False))
    scan = _scan(digest, image.config_digest, below[1])
    record = layered.make_record(image, 2, lower, scan, APP)
    assert (
        record.lower == below and "/app" in record.paths and "/opt/venv/lib/pip-23.dist-info/METADATA" in record.paths
    )
    layered.save_record(record, b"config")
    assert layered.load_record(below, b"config") == record
    assert layered.load_record(below, b"other config") is None and layered.load_record(below[:1], b"config") is None

    new = layered.Image("sha256:" + "9" * 64, "sha256:" + "8" * 64, {"config": {"Labels": {"b": "2", "a": "1"}}}, [])
    rebound = layered.rebind(record, new)
    assert rebound.spdx["packages"][0] == {
        "name": "sandbox",
        "versionInfo": new.digest,
        "checksums": [{"checksumValue": "9" * 64}],
    }
    assert rebound.spdx["packages"][1] == scan.spdx["packages"][1]
    assert rebound.cyclonedx["metadata"]["component"]["version"] == new.digest
    assert rebound.cyclonedx["metadata"]["properties"] == [
        {"name": "keep", "value": "2"}, {"name": "syft:image:labels:a", "value": "1"}, {"name": "syft:image:labels:b", "value": "2"},
    ]  # fmt: skip
    assert rebound.syft["source"]["metadata"]["manifestDigest"] == new.digest

    (layered.records_dir() / next(layered.records_dir().iterdir()).name).write_bytes(b"not gzip")
    assert layered.load_record(below, b"config") is None  # a damaged record is a miss, not an error


def test_a_scan_that_found_something_in_the_app_layers_is_not_recorded(tmp_path: Path) -> None:
    store, digest = layout_image(tmp_path, [BASE, DEPS, *APP_LAYERS])
    image = layered.read_image(store, digest)
    in_app = _scan(digest, image.config_digest, image.diff_ids[-1])
    with pytest.raises(NotReusable, match="in the app stage's layers"):
        layered.make_record(image, 2, {}, in_app, APP)
    fine = _scan(digest, image.config_digest, image.diff_ids[0])
    with pytest.raises(NotReusable, match="replaces /etc/os-release"):
        layered.make_record(image, 2, {"/etc/os-release": "file"}, fine, AppStage({"/etc/os-release": b"x"}))


def test_reuse_needs_a_record_no_collision_and_no_package_in_the_app_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BUILDER_CACHE_DIR", str(tmp_path / "cache"))
    store, digest = layout_image(tmp_path, [BASE, DEPS, *APP_LAYERS])
    image = layered.read_image(store, digest)
    with pytest.raises(NotReusable, match="no earlier scan"):
        layered.reusable_scan(store, image, APP, b"config", lambda: 0)
    count, lower = layered.scan_record(store, image, APP)
    layered.save_record(
        layered.make_record(image, count, lower, _scan(digest, image.config_digest, image.diff_ids[0]), APP), b"config"
    )
    scan, record = layered.reusable_scan(store, image, APP, b"config", lambda: 0)
    assert record.digest == digest and scan.spdx["packages"][0]["versionInfo"] == digest
    with pytest.raises(NotReusable, match="finds 1 package"):
        layered.reusable_scan(store, image, APP, b"config", lambda: 1)
    with pytest.raises(NotReusable, match="no earlier scan to re-use"):
        layered.reusable_scan(store, image, APP, b"config", lambda: -1)

    def syft_fails() -> int:
        raise ToolFailed("syft could not scan the app files (exit 1): boom")

    with pytest.raises(NotReusable, match="boom"):
        layered.reusable_scan(store, image, APP, b"config", syft_fails)


def test_the_app_stage_files_are_where_the_copy_steps_put_them(tmp_path: Path) -> None:
    items = [("app/serve.py", "/app/serve.py"), ("conf", "/etc/myapp"), ("one.txt", "/srv/")]
    stack = SimpleNamespace(app=SimpleNamespace(files=[SimpleNamespace(src=s, dest=d) for s, d in items]))
    (tmp_path / "conf").mkdir()
    files = {"smoke/runner.py": b"r", "smoke/spec.json": b"s", "app/app/serve.py": b"p", "app/conf/a.yaml": b"a",
             "app/conf/sub/b.yaml": b"b", "app/one.txt": b"1", "Dockerfile": b"FROM x"}  # fmt: skip
    placed = app_stage_files(SimpleNamespace(root=tmp_path), stack, files)  # type: ignore[arg-type]
    assert placed == {
        "/opt/builder/smoke/runner.py": b"r", "/opt/builder/smoke/spec.json": b"s", "/app/serve.py": b"p",
        "/etc/myapp/a.yaml": b"a", "/etc/myapp/sub/b.yaml": b"b", "/srv/one.txt": b"1",
    }  # fmt: skip
    assert AppStage(placed, "/work").directories() >= {
        "/",
        "/app",
        "/etc",
        "/etc/myapp/sub",
        "/opt/builder/smoke",
        "/work",
    }


def test_an_image_that_is_not_one_platforms_image_is_scanned_in_full(tmp_path: Path) -> None:
    store, digest = layout_image(tmp_path, [BASE])
    manifest = json.loads(store.blob(digest))
    config = store.path / "blobs" / "sha256" / manifest["config"]["digest"].removeprefix("sha256:")
    config.write_bytes(b"not json")
    with pytest.raises(CheckFailed, match="content does not match its digest"):
        layered.read_image(store, digest)  # a blob that is not what its digest says is refused first
    bad = store.put_blob(b"not json")
    manifest["config"]["digest"] = bad
    index = store.put_blob(json.dumps(manifest).encode())
    with pytest.raises(NotReusable, match="not one platform's image"):
        layered.read_image(store, index)
    with pytest.raises(NotReusable, match="not where it was pushed"):
        layered.read_image(store, "sha256:" + "0" * 64)


class _LyingRegistry(http.server.BaseHTTPRequestHandler):
    """Serves any blob as other bytes than its digest names, cuts one short, fails another."""

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        body = b"not the layer you asked for"
        if self.path.endswith("0" * 64):
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body) + (100 if self.path.endswith("1" * 64) else 0)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.integration
def test_a_registry_that_lies_about_a_layer_is_refused_by_name() -> None:
    """A layer read for the record or the reuse goes through the digest check: a registry serving
    other bytes, a body cut short or a failure names the URL (prove then scans in full)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _LyingRegistry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = HttpClient()
    try:
        store = RegistryStore(client, f"127.0.0.1:{server.server_port}", "team/app", plain=True)
        layer = {"digest": "sha256:" + "2" * 64, "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip"}
        with pytest.raises(CheckFailed, match=r"/v2/team/app/blobs/sha256:2+: the blob's content does not match"):
            layered.read_layer(store, layer, hash_files=True)
        with pytest.raises(HttpError, match=r"truncated response \(the connection closed mid-body\)"):
            store.blob_into("sha256:" + "1" * 64, lambda _: None)
        with pytest.raises(HttpError, match="HTTP 500"):
            store.blob_into("sha256:" + "0" * 64, lambda _: None)
    finally:
        client.close()
        server.shutdown()
        server.server_close()
