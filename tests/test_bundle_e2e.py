"""Air-gapped bundles on real builds: the sandbox stack built once per engine without a registry
(`build stack --sign-key` signs into its OCI layout), bundled, verified offline, imported into a
second registry and index and verified there; every tamper and a foreign key refused."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from builder.bundle.layout import Member, parse_manifest, render_manifest
from tests.conftest import Result, run_cli
from tests.standins import Index, Registry
from tests.test_stack_e2e import build, sandbox, smoke  # noqa: F401  (the sandbox fixture, shared)

pytestmark = pytest.mark.integration
TARGET = "standin-amd64/debian12-cu126"
PASSWORD = "bundle password"
LIB = "wheels/standin_lib-1.0.0-py3-none-any.whl"
SPDX = "sbom/sbom.spdx.json"
PUB = "cosign.pub"


@pytest.fixture(scope="module", params=["docker", "buildah"])
def made(request: pytest.FixtureRequest, sandbox: dict[str, Any]) -> Iterator[dict[str, Any]]:  # noqa: F811
    """One signed build per engine (docker also smoke-tested and attested), and its bundle."""
    engine: str = request.param
    work: Path = sandbox["work"] / f"bundle-{engine}"
    work.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COSIGN_PASSWORD", PASSWORD)
        for name in ("cosign", "other"):
            assert run_cli("keygen", "--out", str(work / name)).code == 0
        built = build(sandbox, engine, TARGET, "--sign-key", str(work / "cosign.key"))
        layout = f"oci:{built['image']['oci-layout']}@{built['image']['digest']}"
        if engine == "docker":
            smoke(sandbox, TARGET, layout, "--sign-key", str(work / "cosign.key"))
    yield {"engine": engine, "work": work, "built": built, "bundle": bundle(sandbox, engine, work / "bundle.tar")}


def bundle(box: dict[str, Any], engine: str, out: Path) -> dict[str, Any]:
    work: Path = box["work"]
    done = run_cli(
        "bundle", "sandbox", "--target", TARGET, *box["args"], "--cache-dir", str(work / f"cache-{engine}"),
        "--results", str(work / f"out-{engine}"), "--out", str(out), "--json",
    )  # fmt: skip
    assert done.code == 0, done.err[-3000:]
    made: dict[str, Any] = json.loads(done.out)
    return made


def verify(path: Path, key: Path) -> Result:
    return run_cli("bundle", "verify", str(path), "--key", str(key), "--json")


def test_bundle_verify_import_and_verify_at_the_site(made: dict[str, Any], sandbox: dict[str, Any]) -> None:  # noqa: F811
    work, built, info = made["work"], made["built"], made["bundle"]
    path = Path(info["bundle"])
    digest = built["image"]["digest"]
    assert info["image"]["digest"] == digest and info["smoke"] is (made["engine"] == "docker")
    assert info["wheels"] == ["standin_ext-1.0.0-cp311-cp311-linux_x86_64.whl", "standin_lib-1.0.0-py3-none-any.whl"]
    print(f"{made['engine']}: bundle {info['bytes']} bytes, image {info['image']['bytes']} bytes")

    verified = verify(path, work / "cosign.pub")
    assert verified.code == 0, verified.out + verified.err
    checks = {check["name"] for check in json.loads(verified.out)["checks"]}
    expected = {"files", "key", "signature", "sbom", "provenance", "sbom-covers-lock", "provenance-lock", "blobs"}
    assert expected | {"lock", "wheels", "sbom-files"} <= checks
    assert ("smoke-file" in checks) is info["smoke"]

    again = bundle(sandbox, made["engine"], work / "again.tar")  # the same inputs give the same bytes
    assert Path(again["bundle"]).read_bytes() == path.read_bytes()

    # The layout inside is one `build verify` (and `cosign verify --local-image`) reads.
    with tarfile.open(path) as tar:
        tar.extractall(work / "unpacked", filter="data")
    index = json.loads((work / "unpacked" / "oci" / "index.json").read_text())
    assert [e["annotations"]["kind"] for e in index["manifests"]] == [
        "dev.cosignproject.cosign/image", "dev.cosignproject.cosign/sigs", "dev.cosignproject.cosign/atts",
    ]  # fmt: skip
    local = run_cli(
        "verify", f"oci:{work / 'unpacked' / 'oci'}", "--key", str(work / "cosign.pub"), "--require", "sbom,provenance"
    )
    assert local.code == 0, local.err

    with Registry.serve(work / "site-registry") as registry, Index.serve(work / "site-index") as index_server:
        repository = f"{registry.address}/site/sandbox"
        imported = run_cli(
            "bundle", "import", str(path), "--registry", repository,
            "--wheels-index", f"http://127.0.0.1:{index_server.port}/", "--json",
        )  # fmt: skip
        assert imported.code == 0, imported.err[-3000:]
        assert json.loads(imported.out)["image"] == f"{repository}@{digest}"
        at_site = run_cli(
            "verify", f"{repository}@{digest}", "--key", str(work / "cosign.pub"), "--require", "sbom,provenance"
        )
        assert at_site.code == 0, at_site.err
        assert sorted(p.name for p in index_server.directory.glob("*.whl")) == info["wheels"]


def member_bytes(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {info.name: tar.extractfile(info).read() for info in tar.getmembers()}  # type: ignore[union-attr]


def write_members(path: Path, members: dict[str, bytes], *, relist: bool) -> None:
    """A tampered copy of a bundle; with `relist`, manifest.json lists the tampered bytes, as a
    careful attacker would write it."""
    if relist:
        old = parse_manifest(members["manifest.json"])
        listed = [
            Member(name, len(data), hashlib.sha256(data).hexdigest())
            for name, data in members.items()
            if name != "manifest.json"
        ]
        members["manifest.json"] = render_manifest(
            stack=old.stack, target=old.target, platform=old.platform, digest=old.digest, tag=old.tag,
            image_bytes=old.image_bytes, lock_checksum=old.lock_checksum,
            created_by=json.loads(members["manifest.json"])["created-by"], members=listed,
        )  # fmt: skip
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def signature_layer(members: dict[str, bytes]) -> str:
    index = json.loads(members["oci/index.json"])
    sig = next(e for e in index["manifests"] if e["annotations"]["kind"].endswith("/sigs"))
    manifest = json.loads(members[f"oci/blobs/sha256/{sig['digest'].removeprefix('sha256:')}"])
    return f"oci/blobs/sha256/{manifest['layers'][0]['digest'].removeprefix('sha256:')}"


def flip(data: bytes) -> bytes:
    return data[:-2] + bytes([data[-2] ^ 1]) + data[-1:]


Members = dict[str, bytes]
Tamper = tuple[Callable[[Members], Members], bool, Callable[[Members], str]]
TAMPERS: dict[str, Tamper] = {  # what is changed: (how, whether manifest.json lists the change, the refusal)
    "a wheel": (lambda m: {LIB: flip(m[LIB])}, True, lambda m: f"error: wheels: {LIB}: sha256"),
    "a wheel, unlisted": (lambda m: {LIB: flip(m[LIB])}, False, lambda m: f"error: files: {LIB}: sha256"),
    "an SBOM": (
        lambda m: {SPDX: m[SPDX].replace(b"standin-lib", b"standin-lob", 1)},
        True,
        lambda m: f"error: sbom-files: {SPDX}: not the SBOM the image is attested with",
    ),
    "a signature layer": (
        lambda m: {signature_layer(m): flip(m[signature_layer(m)])},
        True,
        lambda m: f"error: files: {signature_layer(m)}: its content does not match its digest",
    ),
    "the lock": (
        lambda m: {name: data + b"\n" for name, data in m.items() if name.endswith("/pylock.toml")},
        True,
        lambda m: f"error: lock: lock/sandbox/{TARGET}/pylock.toml was edited after locking",
    ),
    "the manifest": (
        lambda m: {"manifest.json": m["manifest.json"].replace(b'"platform"', b' "platform"')},
        False,
        lambda m: "error: files: manifest.json was edited",
    ),
    "the manifest's list": (
        lambda m: {"manifest.json": m["manifest.json"].replace(hashlib.sha256(m[PUB]).hexdigest().encode(), b"0" * 64)},
        False,
        lambda m: f"error: files: {PUB}: sha256 {hashlib.sha256(m[PUB]).hexdigest()}",
    ),
}


@pytest.mark.parametrize("tamper", [*TAMPERS, "a truncated tar"])
def test_every_tamper_is_refused_naming_the_member(made: dict[str, Any], tamper: str, tmp_path: Path) -> None:
    original = Path(made["bundle"]["bundle"])
    path = tmp_path / "tampered.tar"
    members = member_bytes(original)
    if tamper == "a truncated tar":
        data = original.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        expected = "is truncated or corrupt at oci/blobs/sha256/"
    else:
        change, relist, refusal = TAMPERS[tamper]
        expected = refusal(members)
        write_members(path, {**members, **change(members)}, relist=relist)
    refused = run_cli("bundle", "verify", str(path), "--key", str(made["work"] / "cosign.pub"))
    assert refused.code == 1 and expected in refused.err, refused.out + refused.err


def test_import_pushes_nothing_of_a_bundle_that_does_not_verify(made: dict[str, Any], tmp_path: Path) -> None:
    members = member_bytes(Path(made["bundle"]["bundle"]))
    listed, unlisted = tmp_path / "listed.tar", tmp_path / "unlisted.tar"
    write_members(listed, {**members, LIB: flip(members[LIB])}, relist=True)
    write_members(unlisted, {**members, LIB: flip(members[LIB])}, relist=False)
    with Registry.serve(tmp_path / "registry") as registry:
        repository = f"{registry.address}/site/refused"
        with_key = run_cli(
            "bundle", "import", str(listed), "--registry", repository, "--key", str(made["work"] / "cosign.pub")
        )
        assert with_key.code == 1 and f"error: wheels: {LIB}: sha256" in with_key.err, with_key.err
        without_key = run_cli("bundle", "import", str(unlisted), "--registry", repository)
        assert without_key.code == 1 and f"{LIB}: sha256" in without_key.err, without_key.err
        assert "nothing was pushed" in with_key.err + without_key.err
        assert not (registry.storage / "docker/registry/v2/repositories/site").exists()


def test_a_bundle_for_another_key_is_refused(made: dict[str, Any]) -> None:
    refused = run_cli("bundle", "verify", made["bundle"]["bundle"], "--key", str(made["work"] / "other.pub"))
    assert refused.code == 1
    assert "error: key: cosign.pub: the bundle carries another key than the one given" in refused.err
    assert "error: signature: no signature by this key" in refused.err
    assert "ok: files:" in refused.out


def test_a_bundle_is_made_only_of_a_signed_build(sandbox: dict[str, Any], tmp_path: Path) -> None:  # noqa: F811
    unsigned = run_cli(
        "bundle", "sandbox", "--target", TARGET, *sandbox["args"], "--results", str(tmp_path / "nothing"),
        "--out", str(tmp_path / "b.tar"),
    )  # fmt: skip
    assert unsigned.code == 2 and "no build of sandbox on standin-amd64/debian12-cu126" in unsigned.err
    assert not (tmp_path / "b.tar").exists() and list(tmp_path.iterdir()) == []
