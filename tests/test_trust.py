"""keygen, sign, attest and verify against a real OCI registry (Debian's docker-registry) and OCI
layouts; every refusal the issue lists; a real cosign signature (containers/image's fixture)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from builder.sign import cosign
from builder.sign.keys import decrypt_private_key
from tests.conftest import ROOT, Result, run_cli
from tests.standins import Registry

pytestmark = pytest.mark.integration
PASSWORD = "correct horse battery staple"
FIXTURES = ROOT / "tests" / "fixtures" / "cosign" / "containers-image"


def _put(url: str, data: bytes, content_type: str, method: str = "PUT") -> dict[str, str]:
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=30) as response:
        return dict(response.headers)


def push_blob(base: str, repository: str, data: bytes) -> dict[str, Any]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    location = _put(f"{base}/v2/{repository}/blobs/uploads/", b"", "application/octet-stream", "POST")["Location"]
    location = location if location.startswith("http") else base + location
    _put(f"{location}{'&' if '?' in location else '?'}digest={digest}", data, "application/octet-stream")
    return {"digest": digest, "size": len(data)}


def push_labeled(base: str, repository: str, tag: str, labels: dict[str, str], salt: str = "") -> str:
    """A single-platform image whose config carries `labels`; its manifest digest."""
    layer = push_blob(base, repository, f"layer {salt}".encode())
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": labels},
            "rootfs": {"type": "layers", "diff_ids": []},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **push_blob(base, repository, config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer}],
        }
    ).encode()
    _put(f"{base}/v2/{repository}/manifests/{tag}", manifest, "application/vnd.oci.image.manifest.v1+json")
    return "sha256:" + hashlib.sha256(manifest).hexdigest()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with Registry.serve(tmp_path_factory.mktemp("trust-registry")) as started:
        yield started


@pytest.fixture
def keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    monkeypatch.setenv("COSIGN_PASSWORD", PASSWORD)
    assert run_cli("keygen", "--out", str(tmp_path / "cosign")).code == 0
    assert run_cli("keygen", "--out", str(tmp_path / "other")).code == 0
    return {"key": tmp_path / "cosign.key", "pub": tmp_path / "cosign.pub", "other": tmp_path / "other.key"}


def cli(*args: str) -> Result:
    result = run_cli(*args)
    assert PASSWORD not in result.out + result.err
    return result


def test_keygen_writes_cosign_formats_with_private_permissions(keys: dict[str, Path]) -> None:
    assert stat.S_IMODE(keys["key"].stat().st_mode) == 0o600
    assert keys["key"].read_text().startswith("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----")
    assert keys["pub"].read_text().startswith("-----BEGIN PUBLIC KEY-----")
    decrypt_private_key(keys["key"].read_bytes(), PASSWORD)
    again = run_cli("keygen", "--out", str(keys["key"].with_suffix("")))
    assert again.code == 2 and "already exists" in again.err


def test_sign_then_verify_and_sign_twice_adds_nothing(registry: Registry, keys: dict[str, Path]) -> None:
    digest = push_labeled(registry.url, "trust/app", "v1", {})
    image = f"{registry.address}/trust/app:v1"
    signed = cli("sign", image, "--key", str(keys["key"]), "--json")
    assert signed.code == 0, signed.err
    done = json.loads(signed.out)
    assert done["digest"] == digest and done["where"] == cosign.signature_tag(digest) and done["added"]
    assert json.loads(cli("sign", image, "--key", str(keys["key"]), "--json").out)["added"] is False
    verified = cli("verify", image, "--key", str(keys["pub"]))
    assert verified.code == 0, verified.err
    assert f"ok: signature: 1 signature(s) by this key over {digest}" in verified.out


def test_wrong_password_writes_nothing(
    registry: Registry, keys: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    digest = push_labeled(registry.url, "trust/pw", "v1", {})
    monkeypatch.setenv("COSIGN_PASSWORD", "not it")
    result = cli("sign", f"{registry.address}/trust/pw:v1", "--key", str(keys["key"]))
    assert result.code == 2 and len(result.errors) == 1 and "not it" not in result.err
    with pytest.raises(urllib.error.HTTPError):  # no .sig tag was pushed
        urllib.request.urlopen(f"{registry.url}/v2/trust/pw/manifests/{cosign.signature_tag(digest)}")


def test_build_stack_checks_the_signing_key_before_building(
    keys: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    root = ROOT / "tests" / "fixtures" / "catalogue"
    out = tmp_path / "out"
    common = ["stack", "maie-jetson", "--root", str(root), "--out", str(out), "--registry", "127.0.0.1:9/x"]
    monkeypatch.setenv("COSIGN_PASSWORD", "not it")
    for pushed in ([], ["--push"]):  # without --push, the OCI layout is signed: the key is checked all the same
        wrong = run_cli(*common, *pushed, "--sign-key", str(keys["key"]))
        assert wrong.code == 2 and len(wrong.err.strip().splitlines()) == 1 and "not it" not in wrong.err, wrong.err
    assert not out.exists()  # refused before any lock check, render or engine


def test_a_tag_pushed_again_after_signing_is_refused(registry: Registry, keys: dict[str, Path]) -> None:
    push_labeled(registry.url, "trust/moved", "v1", {}, salt="first")
    image = f"{registry.address}/trust/moved:v1"
    assert cli("sign", image, "--key", str(keys["key"])).code == 0
    moved = push_labeled(registry.url, "trust/moved", "v1", {}, salt="second")
    result = cli("verify", image, "--key", str(keys["pub"]))
    assert result.code == 1 and f"error: signature: no signature of {moved}" in result.err


def test_a_signature_by_another_key_is_refused(registry: Registry, keys: dict[str, Path]) -> None:
    push_labeled(registry.url, "trust/other", "v1", {})
    image = f"{registry.address}/trust/other:v1"
    assert cli("sign", image, "--key", str(keys["other"])).code == 0
    result = cli("verify", image, "--key", str(keys["pub"]))
    assert result.code == 1 and "bad signature: it does not verify with this key" in result.err


def _copy_sig(registry: Registry, repository: str, source: str, destination: str, change: Any = None) -> None:
    """Put image `source`'s .sig manifest (optionally changed) under `destination`'s .sig tag."""
    with urllib.request.urlopen(
        urllib.request.Request(
            f"{registry.url}/v2/{repository}/manifests/{cosign.signature_tag(source)}",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        )
    ) as response:
        manifest = json.loads(response.read())
    if change is not None:
        change(manifest)
    _put(
        f"{registry.url}/v2/{repository}/manifests/{cosign.signature_tag(destination)}",
        json.dumps(manifest).encode(),
        "application/vnd.oci.image.manifest.v1+json",
    )


def test_a_signature_over_another_digest_is_refused(registry: Registry, keys: dict[str, Path]) -> None:
    first = push_labeled(registry.url, "trust/copy", "a", {}, salt="a")
    second = push_labeled(registry.url, "trust/copy", "b", {}, salt="b")
    assert cli("sign", f"{registry.address}/trust/copy:a", "--key", str(keys["key"])).code == 0
    _copy_sig(registry, "trust/copy", first, second)
    result = cli("verify", f"{registry.address}/trust/copy@{second}", "--key", str(keys["pub"]))
    assert result.code == 1 and f"signed for another digest: {first}" in result.err


GARBAGE: dict[str, Any] = {}  # a layer blob that is not a payload, pushed by the test


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            lambda m: m["layers"][0]["annotations"].update({cosign.SIGNATURE_ANNOTATION: "%%%"}),
            "garbled signature annotation",
        ),
        (lambda m: m["layers"][0].update(mediaType="text/plain"), "is not a cosign simple-signing payload"),
        (lambda m: m["layers"][0].update(GARBAGE), "bad signature"),
    ],
    ids=["annotation", "media-type", "payload"],
)
def test_a_garbled_signature_manifest_is_refused(
    registry: Registry, keys: dict[str, Path], change: Any, reason: str
) -> None:
    GARBAGE.update(push_blob(registry.url, "trust/garbled", b"\x00garbled payload"))
    digest = push_labeled(registry.url, "trust/garbled", "v1", {}, salt=reason)
    assert cli("sign", f"{registry.address}/trust/garbled:v1", "--key", str(keys["key"])).code == 0
    _copy_sig(registry, "trust/garbled", digest, digest, change)
    result = cli("verify", f"{registry.address}/trust/garbled@{digest}", "--key", str(keys["pub"]))
    assert result.code == 1 and reason in result.err, result.err


LOCKED = {"torch": "2.8.0", "numpy": "2.2.6"}


def _lock_layout(root: Path, stack: str, target: str, packages: dict[str, str]) -> str:
    """A lock at root/locks/STACK/TARGET holding `packages` (through builder's own writer); its checksum."""
    from builder.lock.model import ImageLock, write_lock
    from builder.lock.paths import lock_paths

    fixture = json.loads(
        (ROOT / "tests/fixtures/locks/maie-jetson/orin-nano-super/jp6.2-cu126/image-lock.json").read_text()
    )
    fixture.update(stack=stack, target=target, packages=[], checksum="")
    pylock = 'lock-version = "1.0"\ncreated-by = "test"\n' + "".join(
        f'\n[[packages]]\nname = "{name}"\nversion = "{version}"\n' for name, version in packages.items()
    )
    fixture["pylock-sha256"] = hashlib.sha256(pylock.encode()).hexdigest()
    fixture["build-pylocks"] = {}
    image, _ = write_lock(lock_paths(root / "locks", stack, target), ImageLock.model_validate(fixture), pylock)
    return image.inputs.checksum


def _predicate(tmp_path: Path, name: str, value: object) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(value))
    return path


def spdx(packages: dict[str, str]) -> dict[str, object]:
    return {"spdxVersion": "SPDX-2.3", "packages": [{"name": n, "versionInfo": v} for n, v in packages.items()]}


@pytest.fixture
def labeled(registry: Registry, keys: dict[str, Path], tmp_path: Path) -> dict[str, Any]:
    checksum = _lock_layout(tmp_path / "catalogue", "demo", "nano/jp", LOCKED)
    labels = {"builder.stack": "demo", "builder.target": "nano/jp", "builder.lock-checksum": checksum}
    digest = push_labeled(registry.url, "trust/labeled", tmp_path.name[:40], labels, salt=tmp_path.name)
    image = f"{registry.address}/trust/labeled@{digest}"
    assert cli("sign", image, "--key", str(keys["key"])).code == 0
    return {"image": image, "digest": digest, "checksum": checksum, "root": tmp_path / "catalogue"}


def verify_with_lock(labeled: dict[str, Any], keys: dict[str, Path], require: str) -> Result:
    return cli(
        "verify", labeled["image"], "--key", str(keys["pub"]), "--require", require, "--root", str(labeled["root"])
    )


def test_sbom_and_provenance_attestations_verify_against_the_lock(
    labeled: dict[str, Any], keys: dict[str, Path], tmp_path: Path
) -> None:
    key = str(keys["key"])
    for kind, predicate in (
        ("spdxjson", spdx(LOCKED)),
        ("slsaprovenance1", {"buildDefinition": {"internalParameters": {"lockChecksum": labeled["checksum"]}}}),
    ):
        attested = cli(
            "attest",
            labeled["image"],
            "--key",
            key,
            "--type",
            kind,
            "--predicate",
            str(_predicate(tmp_path, kind, predicate)),
        )
        assert attested.code == 0, attested.err
    result = verify_with_lock(labeled, keys, "sbom,provenance")
    assert result.code == 0, result.err
    assert "ok: sbom-covers-lock: the SPDX SBOM covers the 2 packages of lock" in result.out
    assert f"ok: provenance-lock: names lock {labeled['checksum']}" in result.out


def test_an_sbom_missing_a_locked_package_is_refused(
    labeled: dict[str, Any], keys: dict[str, Path], tmp_path: Path
) -> None:
    partial = _predicate(tmp_path, "sbom", spdx({"torch": "2.8.0"}))
    assert (
        cli(
            "attest", labeled["image"], "--key", str(keys["key"]), "--type", "spdxjson", "--predicate", str(partial)
        ).code
        == 0
    )
    result = verify_with_lock(labeled, keys, "sbom")
    assert result.code == 1 and "the SPDX SBOM lacks locked package(s): numpy 2.2.6" in result.err


def test_a_provenance_naming_another_lock_is_refused(
    labeled: dict[str, Any], keys: dict[str, Path], tmp_path: Path
) -> None:
    other = _predicate(
        tmp_path, "prov", {"buildDefinition": {"internalParameters": {"lockChecksum": "sha256:" + "1" * 64}}}
    )
    assert (
        cli(
            "attest",
            labeled["image"],
            "--key",
            str(keys["key"]),
            "--type",
            "slsaprovenance1",
            "--predicate",
            str(other),
        ).code
        == 0
    )
    result = verify_with_lock(labeled, keys, "provenance")
    assert result.code == 1 and f"names lock sha256:{'1' * 64}, the image is lock {labeled['checksum']}" in result.err


def test_an_attestation_about_another_digest_is_refused(
    registry: Registry, keys: dict[str, Path], tmp_path: Path
) -> None:
    first = push_labeled(registry.url, "trust/att", "a", {}, salt="att-a")
    second = push_labeled(registry.url, "trust/att", "b", {}, salt="att-b")
    for digest in (first, second):
        assert cli("sign", f"{registry.address}/trust/att@{digest}", "--key", str(keys["key"])).code == 0
    sbom = _predicate(tmp_path, "sbom", spdx(LOCKED))
    assert (
        cli(
            "attest",
            f"{registry.address}/trust/att@{first}",
            "--key",
            str(keys["key"]),
            "--type",
            "spdxjson",
            "--predicate",
            str(sbom),
        ).code
        == 0
    )
    with urllib.request.urlopen(
        urllib.request.Request(
            f"{registry.url}/v2/trust/att/manifests/{first.replace(':', '-')}.att",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        )
    ) as response:
        manifest = response.read()
    _put(
        f"{registry.url}/v2/trust/att/manifests/{second.replace(':', '-')}.att",
        manifest,
        "application/vnd.oci.image.manifest.v1+json",
    )
    result = cli("verify", f"{registry.address}/trust/att@{second}", "--key", str(keys["pub"]), "--require", "sbom")
    assert result.code == 1 and "subject" in result.err and first.removeprefix("sha256:") in result.err


def test_a_truncated_envelope_is_refused(registry: Registry, keys: dict[str, Path], tmp_path: Path) -> None:
    from builder.sign import dsse
    from builder.sign.keys import read_private_key

    digest = push_labeled(registry.url, "trust/cut", "v1", {}, salt="cut")
    image = f"{registry.address}/trust/cut@{digest}"
    assert cli("sign", image, "--key", str(keys["key"])).code == 0
    key = read_private_key(keys["key"], PASSWORD)
    attachment = dsse.attest(key, f"{registry.address}/trust/cut", digest, dsse.SPDX, spdx(LOCKED))
    truncated = attachment.blob[: len(attachment.blob) // 2]
    layer = push_blob(registry.url, "trust/cut", truncated)
    good = dsse.attestation_image([attachment])
    manifest = json.loads(good.manifest)
    manifest["layers"][0].update(layer)
    push_blob(registry.url, "trust/cut", good.config)
    _put(
        f"{registry.url}/v2/trust/cut/manifests/{dsse.attestation_tag(digest)}",
        json.dumps(manifest).encode(),
        good.media_type,
    )
    result = cli("verify", image, "--key", str(keys["pub"]), "--require", "sbom")
    assert result.code == 1 and "garbled envelope" in result.err, result.err


def test_bundle_format_is_a_referrer_and_never_both_formats(registry: Registry, keys: dict[str, Path]) -> None:
    digest = push_labeled(registry.url, "trust/bundle", "v1", {}, salt="bundle")
    image = f"{registry.address}/trust/bundle@{digest}"
    signed = cli("sign", image, "--key", str(keys["key"]), "--format", "bundle", "--json")
    assert signed.code == 0, signed.err
    with urllib.request.urlopen(
        urllib.request.Request(
            f"{registry.url}/v2/trust/bundle/manifests/{digest.replace(':', '-')}",
            headers={"Accept": "application/vnd.oci.image.index.v1+json"},
        )
    ) as response:
        index = json.loads(response.read())
    assert [m["digest"] for m in index["manifests"]] == [json.loads(signed.out)["manifest"]]
    assert cli("verify", image, "--key", str(keys["pub"])).code == 0
    both = cli("sign", image, "--key", str(keys["key"]))
    assert both.code == 2 and "is signed in the bundle format" in both.err


def test_a_real_cosign_signature_verifies(tmp_path: Path) -> None:
    """containers/image's dir-img-cosign-valid: the image manifest and the signature cosign made, in
    an OCI layout, verified with the key that made it (and refused with another)."""
    from builder.sign.oci import Attachment
    from builder.upstream.images import LayoutStore

    layout = tmp_path / "layout"
    (layout / "blobs" / "sha256").mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text('{"schemaVersion": 2, "manifests": []}')
    store = LayoutStore(layout)
    manifest = (FIXTURES / "dir-img-cosign-valid" / "manifest.json").read_bytes()
    digest = store.put_manifest("signed", manifest, "application/vnd.docker.distribution.manifest.v2+json")
    raw = (FIXTURES / "dir-img-cosign-valid" / "signature-1").read_bytes()
    signature = json.loads(raw.split(b"\n", 1)[1])
    attachment = Attachment.of(signature["mimeType"], base64.b64decode(signature["payload"]), signature["annotations"])
    image = cosign.signature_image([attachment])
    store.put_blob(image.config)
    store.put_blob(attachment.blob)
    store.put_manifest(cosign.signature_tag(digest), image.manifest, image.media_type)
    good = run_cli("verify", f"oci:{layout}:signed", "--key", str(FIXTURES / "cosign.pub"))
    assert good.code == 0 and f"ok: signature: 1 signature(s) by this key over {digest}" in good.out
    bad = run_cli("verify", f"oci:{layout}:signed", "--key", str(FIXTURES / "cosign2.pub"))
    assert bad.code == 1 and "bad signature" in bad.err


def test_unreachable_registry_is_exit_3(keys: dict[str, Path]) -> None:
    result = cli("verify", "127.0.0.1:9/nothing/here:v1", "--key", str(keys["pub"]))
    assert result.code == 3 and len(result.errors) == 1 and "127.0.0.1:9" in result.errors[0]


def test_keyless_needs_the_cosign_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    result = run_cli("sign", "127.0.0.1:9/x/y:v1", "--keyless")
    assert result.code == 3 and "tool 'cosign' is not installed" in result.err


def test_no_secret_in_any_file_written(registry: Registry, keys: dict[str, Path], tmp_path: Path) -> None:
    key_text = keys["key"].read_text()
    body = "".join(line for line in key_text.splitlines() if not line.startswith("-----"))
    for path in tmp_path.rglob("*"):
        if path.is_file() and path != keys["key"] and path != keys["other"]:
            content = path.read_bytes()
            assert PASSWORD.encode() not in content and body.encode() not in content
    assert os.environ.get("COSIGN_PASSWORD") == PASSWORD


def test_a_smoke_attestation_proves_the_image_only_when_the_run_passed(
    registry: Registry, keys: dict[str, Path], tmp_path: Path
) -> None:
    from builder.verify import SMOKE

    key, pub = str(keys["key"]), str(keys["pub"])
    failed = {"summary": {"result": "fail", "failed_checks": ["llm-decode"]}, "checks": []}
    for name, predicate in (("failed", failed), ("no-gpu", {"summary": {"result": "no gpu", "failed_checks": []}})):
        digest = push_labeled(registry.url, "trust/smoke", name, {}, salt=name)
        image = f"{registry.address}/trust/smoke@{digest}"
        assert cli("sign", image, "--key", key).code == 0
        missing = cli("verify", image, "--key", pub, "--require", "smoke")
        assert missing.code == 1 and "error: smoke: no valid smoke attestation" in missing.err
        attested = cli(
            "attest", image, "--key", key, "--type", SMOKE, "--predicate", str(_predicate(tmp_path, name, predicate))
        )
        assert attested.code == 0, attested.err
        refused = cli("verify", image, "--key", pub, "--require", "smoke")
        assert refused.code == 1 and "error: smoke: attested, but the smoke run did not pass" in refused.err
        assert {"failed": "fail (failed: llm-decode)", "no-gpu": "no gpu (failed: none)"}[name] in refused.err
    passed = {"summary": {"result": "pass", "failed_checks": []}, "checks": []}
    attested = cli(
        "attest", image, "--key", key, "--type", SMOKE, "--predicate", str(_predicate(tmp_path, "p", passed))
    )
    assert attested.code == 0, attested.err
    ok = cli("verify", image, "--key", pub, "--require", "smoke")
    assert ok.code == 0 and "ok: smoke: attested" in ok.out, ok.err
