"""Air-gapped bundles, the pure part: manifest.json, the `cosign save` index, the wheels a bundle
must carry, the deterministic tar and what reading one back names; and the command line's refusals.
The round trip on real builds is in test_bundle_e2e.py."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from builder.bundle.check import file_check
from builder.bundle.layout import (
    MANIFEST,
    Descriptor,
    blob_digest,
    blob_name,
    built_wheels,
    layout_index,
    parse_manifest,
    render_manifest,
    safe_name,
    wheel_problems,
)
from builder.bundle.tarball import describe, unpack, write_bundle
from builder.errors import CheckFailed
from builder.upstream.images import LayoutStore
from tests.conftest import run_cli

DIGEST = "sha256:" + "a" * 64


def manifest_for(members: dict[str, bytes]) -> bytes:
    listed = [describe(name, data) for name, data in members.items()]
    return render_manifest(
        stack="s", target="d/c", platform="linux/amd64", digest=DIGEST, tag="d-c-123", image_bytes=10,
        lock_checksum="sha256:" + "b" * 64, created_by="builder test", members=listed,
    )  # fmt: skip


def test_the_manifest_reads_back_and_an_edit_shows() -> None:
    data = manifest_for({"b.txt": b"b", "a.txt": b"a"})
    parsed = parse_manifest(data)
    assert [m.name for m in parsed.members] == ["a.txt", "b.txt"]  # sorted, whatever the order given
    assert (parsed.digest, parsed.tag, parsed.image_bytes) == (DIGEST, "d-c-123", 10)
    with pytest.raises(CheckFailed, match="was edited"):
        parse_manifest(data.replace(b'"stack"', b' "stack"'))
    with pytest.raises(CheckFailed, match="corrupt"):
        parse_manifest(data[:-10])
    with pytest.raises(CheckFailed, match="bundle-version 2"):
        parse_manifest(data.replace(b'"bundle-version": 1', b'"bundle-version": 2'))


def test_the_layout_index_is_what_cosign_save_writes() -> None:
    image, sig, att = (Descriptor("application/vnd.oci.image.manifest.v1+json", f"sha256:{c * 64}", 1) for c in "abc")
    index = json.loads(layout_index(image, "t-1", sig, att))
    kinds = [
        (e["annotations"]["kind"], e["annotations"]["org.opencontainers.image.ref.name"]) for e in index["manifests"]
    ]
    assert kinds == [
        ("dev.cosignproject.cosign/image", "t-1"),
        ("dev.cosignproject.cosign/sigs", f"sha256-{'a' * 64}.sig"),
        ("dev.cosignproject.cosign/atts", f"sha256-{'a' * 64}.att"),
    ]


def test_signing_into_a_layout_marks_the_entries_as_cosign_save_does(tmp_path: Path) -> None:
    (tmp_path / "index.json").write_text('{"schemaVersion": 2, "manifests": []}')
    store = LayoutStore(tmp_path)
    image = store.put_manifest("v1", b'{"schemaVersion": 2}', "application/vnd.oci.image.manifest.v1+json")
    store.put_manifest(
        f"sha256-{image.removeprefix('sha256:')}.sig", b"{}", "application/vnd.oci.image.manifest.v1+json"
    )
    entries = json.loads((tmp_path / "index.json").read_text())["manifests"]
    assert [e["annotations"].get("kind") for e in entries] == [
        "dev.cosignproject.cosign/image",
        "dev.cosignproject.cosign/sigs",
    ]
    assert store.manifests_by_name()[0] == ("v1", image)


def test_member_names() -> None:
    assert safe_name("oci/blobs/sha256/" + "a" * 64) and safe_name("wheels/x-1.0+cu126-py3-none-any.whl")
    for bad in ("/etc/passwd", "../x", "a/../../x", "a//b", "a b", ""):
        assert not safe_name(bad), bad
    assert blob_digest(blob_name(DIGEST)) == DIGEST and blob_digest("wheels/x.whl") is None


def test_wheels_must_be_the_locked_and_the_built_ones() -> None:
    locked, built = {"lib.whl": "1" * 64}, {"ext.whl": "2" * 64}
    assert wheel_problems({"lib.whl": "1" * 64, "ext.whl": "2" * 64}, locked, built) == []
    assert wheel_problems({"lib.whl": "3" * 64, "ext.whl": "2" * 64, "odd.whl": "4" * 64}, locked, built) == [
        f"wheels/lib.whl: sha256 {'3' * 64}, the lock records {'1' * 64}",
        "wheels/odd.whl: neither the lock nor the signed provenance names this wheel",
    ]
    assert wheel_problems({"lib.whl": "1" * 64}, locked, built) == ["wheels/ext.whl: missing (a built wheel)"]
    provenance = {
        "runDetails": {"byproducts": [{"name": "ext.whl", "uri": "wheel:ext/ext.whl", "digest": {"sha256": "2" * 64}}]}
    }
    assert built_wheels(provenance) == built and built_wheels({}) == {}


def write(tmp_path: Path, members: dict[str, bytes], name: str = "b.tar") -> Path:
    path = tmp_path / name
    write_bundle(path, manifest_for(members), dict(members))
    return path


def test_the_tar_is_deterministic_and_reads_back(tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(b"x" * 3_000_000)
    members: dict[str, bytes | Path] = {"wheels/b.whl": b"wheel", "a.json": b"{}", "oci/blobs/sha256/x": source}
    listed = [describe(n, s) for n, s in members.items()]
    manifest = render_manifest(
        stack="s", target="t", platform="p", digest=DIGEST, tag="t", image_bytes=1, lock_checksum="c",
        created_by="x", members=listed,
    )  # fmt: skip
    write_bundle(tmp_path / "one.tar", manifest, members)
    write_bundle(tmp_path / "two.tar", manifest, dict(reversed(members.items())))
    assert (tmp_path / "one.tar").read_bytes() == (tmp_path / "two.tar").read_bytes()
    with tarfile.open(tmp_path / "one.tar") as tar:
        infos = tar.getmembers()
    assert [i.name for i in infos] == [MANIFEST, "a.json", "oci/blobs/sha256/x", "wheels/b.whl"]
    assert {(i.mtime, i.uid, i.gid, i.uname, i.gname, i.mode) for i in infos} == {(0, 0, 0, "", "", 0o644)}
    unpacked = unpack(tmp_path / "one.tar", tmp_path / "out")
    assert unpacked.problems == [] and unpacked.manifest == manifest
    assert (tmp_path / "out" / "oci/blobs/sha256/x").read_bytes() == source.read_bytes()
    check, parsed = file_check(unpacked)
    assert parsed is not None and check.ok, check.detail


def rewrite(path: Path, change: dict[str, bytes | None], extra: dict[str, bytes] | None = None) -> None:
    """The tar at `path` with members replaced (None: removed) and extra members appended."""
    with tarfile.open(path) as tar:
        kept = [(info, tar.extractfile(info).read()) for info in tar.getmembers()]  # type: ignore[union-attr]
    with tarfile.open(path, "w") as tar:
        for info, data in kept:
            new = change.get(info.name, data)
            if new is not None:
                info.size = len(new)
                tar.addfile(info, io.BytesIO(new))
        for name, data in (extra or {}).items():
            tar.addfile(tarfile.TarInfo(name) if not data else _info(name, len(data)), io.BytesIO(data))


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    return info


@pytest.mark.parametrize(
    ("tamper", "named"),
    [
        ("member", "a.txt: sha256"),
        ("missing", "b.txt: missing from the bundle"),
        ("extra", "c.txt: not listed in manifest.json"),
        ("manifest", "manifest.json was edited"),
        ("twice", "a.txt: in the tar twice"),
        ("truncated", "b.tar is truncated or corrupt"),
        ("unsafe", "../evil: not a name a bundle member may have"),
        ("blob", f"{blob_name(DIGEST)}: its content does not match its digest"),
    ],
)
def test_every_tamper_is_named(tmp_path: Path, tamper: str, named: str) -> None:
    members = {"a.txt": b"a", "b.txt": b"b"}
    path = write(tmp_path, members)
    assert file_check(unpack(path, tmp_path / "clean"))[0].ok
    if tamper == "member":
        rewrite(path, {"a.txt": b"A"})
    elif tamper == "missing":
        rewrite(path, {"b.txt": None})
    elif tamper == "extra":
        rewrite(path, {}, {"c.txt": b"c"})
    elif tamper == "manifest":
        rewrite(path, {MANIFEST: manifest_for(members) + b" "})
    elif tamper == "twice":
        rewrite(path, {}, {"a.txt": b"a"})
    elif tamper == "truncated":
        path.write_bytes(path.read_bytes()[:1300])
    elif tamper == "unsafe":
        rewrite(path, {}, {"../evil": b"x"})
    elif tamper == "blob":  # the manifest updated to match: the content address still gives it away
        path = write(tmp_path, {**members, blob_name(DIGEST): b"other"})
    check, _ = file_check(unpack(path, tmp_path / "out"))
    assert not check.ok and named in check.detail, check.detail
    assert not (tmp_path / "evil").exists()


# ---------------------------------------------------------------- the command line


def test_bundle_commands_refuse_bad_input(tmp_path: Path) -> None:
    (tmp_path / "cosign.pub").write_text("not a key")
    missing = run_cli("bundle", "verify", str(tmp_path / "nope.tar"), "--key", str(tmp_path / "cosign.pub"))
    assert missing.code == 2 and len(missing.errors) == 1, missing.err
    registry = run_cli("bundle", "import", str(tmp_path / "b.tar"), "--registry", "not a repo")
    assert registry.code == 2 and "--registry 'not a repo' is not an image repository" in registry.err
    index = run_cli(
        "bundle", "import", str(tmp_path / "b.tar"), "--registry", "r.lan:5000/x", "--wheels-index", "ftp://x"
    )
    assert index.code == 2 and "--wheels-index 'ftp://x'" in index.err
    no_file = run_cli("bundle", "import", str(tmp_path / "b.tar"), "--registry", "r.lan:5000/x")
    assert no_file.code == 2 and f"{tmp_path / 'b.tar'}: no such file" in no_file.err
    usage = run_cli("bundle", "verify", str(tmp_path / "b.tar"))
    assert usage.code == 2 and "--key" in usage.err and "build bundle verify --help" in usage.err
