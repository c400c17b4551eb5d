"""Signing formats against third-party vectors (cosign, containers/image, a cosign wire capture) and round trips."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from builder.errors import BuilderError, CheckFailed, UsageError
from builder.sign import bundle, cosign, dsse, keys, oci
from builder.sign.encoding import go_json, pem_decode, pem_encode, sha256_digest

VECTORS = Path(__file__).parent / "fixtures" / "cosign"
CI = VECTORS / "containers-image"
COSIGN_KEYS = VECTORS / "sigstore-cosign"
WIRE = VECTORS / "wire-capture"
VALID_DIGEST = "sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00"
VALID_REFERENCE = "192.168.64.2:5000/cosign-signed-single-sample"
WIRE_DIGEST = "sha256:33735bd63cf84d7e388d9f6d297d348c523c044410f553bd878c6d7829612735"
OTHER_DIGEST = "sha256:" + "ab" * 32
PASSWORD = "correct-horse-battery"


def dir_signature(path: Path) -> oci.Attachment:
    """A containers/image `dir:` sigstore signature file (\\0sigstore-json\\n + JSON) as the .sig layer it came from."""
    raw = path.read_bytes()
    prefix = b"\x00sigstore-json\n"
    assert raw.startswith(prefix)
    document = json.loads(raw[len(prefix) :])
    return oci.Attachment.of(document["mimeType"], base64.b64decode(document["payload"]), document["annotations"])


def blobs_of(*attachments: oci.Attachment) -> dict[str, bytes]:
    return {attachment.layer.digest: attachment.blob for attachment in attachments}


def verify(*attachments: oci.Attachment, key: keys.PublicKey, digest: str) -> list[oci.LayerVerdict]:
    image = cosign.signature_image(attachments)
    return cosign.verify_signatures(image.manifest, blobs_of(*attachments), key, digest)


@pytest.fixture(scope="module")
def cosign_pub() -> keys.PublicKey:
    return keys.read_public_key(CI / "cosign.pub")


@pytest.fixture(scope="module")
def private_key() -> keys.PrivateKey:
    return keys.generate_private_key()


# ---------------------------------------------------------------- keys: cosign's vectors


@pytest.mark.parametrize("name", ["pemcosignkey", "pemsigstorekey"])
def test_cosign_encrypted_key_vectors_load_with_password_hello(name: str) -> None:
    key = keys.read_private_key(COSIGN_KEYS / f"{name}.key", "hello")
    assert isinstance(key.curve, ec.SECP256R1)
    attachment = cosign.sign_image(key, "registry.site/x", OTHER_DIGEST)
    assert cosign.verify_signatures(
        cosign.signature_image([attachment]).manifest, blobs_of(attachment), key.public_key(), OTHER_DIGEST
    )[0].ok


def test_a_sec1_key_inside_the_envelope_is_refused_as_cosign_refuses_it() -> None:
    with pytest.raises(BuilderError, match="SEC1") as caught:
        keys.read_private_key(COSIGN_KEYS / "pemcosigneckey.key", "hello")
    assert caught.value.exit_code == 2


@pytest.mark.parametrize("password", ["hellO", "", "hunter2-not-the-password"])
def test_a_wrong_password_is_exit_2_on_one_line_without_the_password(password: str) -> None:
    with pytest.raises(BuilderError) as caught:
        keys.read_private_key(COSIGN_KEYS / "pemsigstorekey.key", password)
    assert caught.value.exit_code == 2 and not isinstance(caught.value, CheckFailed)
    [line] = caught.value.lines()
    assert "wrong password" in line
    assert password == "" or password not in line


@pytest.mark.parametrize(
    ("name", "label"), [("pemsigstorekey", keys.SIGSTORE_LABEL), ("pemcosignkey", keys.COSIGN_LABEL)]
)
def test_writing_a_key_reproduces_cosigns_file_byte_for_byte(name: str, label: str) -> None:
    original = (COSIGN_KEYS / f"{name}.key").read_bytes()
    document = json.loads(pem_decode(original)[1])
    key = keys.decrypt_private_key(original, "hello")
    again = keys.encrypt_private_key(
        key,
        "hello",
        label=label,
        scrypt_n=document["kdf"]["params"]["N"],
        salt=base64.b64decode(document["kdf"]["salt"]),
        nonce=base64.b64decode(document["cipher"]["nonce"]),
    )
    assert again == original


def test_cosign_pub_round_trips_byte_for_byte(cosign_pub: keys.PublicKey) -> None:
    assert keys.public_key_pem(cosign_pub) == (CI / "cosign.pub").read_bytes()


# ---------------------------------------------------------------- keys: our files


def test_keygen_writes_a_0600_key_never_readable_by_others_and_a_0644_pub(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    modes_when_written: list[int] = []
    real_fdopen = os.fdopen

    def watching_fdopen(handle: int, *args: Any, **kwargs: Any) -> Any:
        modes_when_written.append(stat.S_IMODE(os.fstat(handle).st_mode))
        return real_fdopen(handle, *args, **kwargs)

    monkeypatch.setattr("builder.fsutil.os.fdopen", watching_fdopen)
    key_path, pub_path = keys.write_key_pair(tmp_path / "cosign", PASSWORD)
    assert (key_path.name, pub_path.name) == ("cosign.key", "cosign.pub")
    assert modes_when_written == [0o600, 0o644]
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(pub_path.stat().st_mode) == 0o644
    label, body = pem_decode(key_path.read_bytes())
    assert label == "ENCRYPTED SIGSTORE PRIVATE KEY"
    assert list(json.loads(body)) == ["kdf", "cipher", "ciphertext"]
    assert json.loads(body)["kdf"]["params"] == {"N": 65536, "r": 8, "p": 1}
    key = keys.read_private_key(key_path, PASSWORD)
    assert keys.public_key_pem(key.public_key()) == pub_path.read_bytes()
    assert keys.read_public_key(pub_path).public_numbers() == key.public_key().public_numbers()


def test_keygen_allows_an_empty_password_and_refuses_to_overwrite(tmp_path: Path) -> None:
    key_path, _ = keys.write_key_pair(tmp_path / "site", "")
    keys.read_private_key(key_path, b"")
    with pytest.raises(BuilderError, match="already exists"):
        keys.write_key_pair(tmp_path / "site", "")
    keys.write_key_pair(tmp_path / "site", "other", overwrite=True)
    keys.read_private_key(key_path, "other")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda doc: doc["kdf"]["params"].update(N=1024), "unsupported scrypt parameters"),
        (lambda doc: doc["kdf"]["params"].update(r=16), "unsupported scrypt parameters"),
        (lambda doc: doc["cipher"].update(name="aes-gcm"), "scrypt/nacl/secretbox"),
        (lambda doc: doc.pop("ciphertext"), "garbled"),
        (lambda doc: doc["cipher"].update(nonce="!!"), "garbled"),
    ],
)
def test_damaged_key_documents_are_refused(mutate: Callable[[dict[str, Any]], object], message: str) -> None:
    label, body = pem_decode((COSIGN_KEYS / "pemsigstorekey.key").read_bytes())
    document = json.loads(body)
    mutate(document)
    with pytest.raises(BuilderError, match=message):
        keys.decrypt_private_key(pem_encode(label, json.dumps(document).encode()), "hello")


def test_keys_of_other_kinds_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BuilderError, match="'PUBLIC KEY' PEM block"):
        keys.decrypt_private_key((CI / "cosign.pub").read_bytes(), "hello")
    with pytest.raises(BuilderError, match="not a cosign private key"):
        keys.decrypt_private_key(b"not pem", "hello")
    with pytest.raises(BuilderError, match="cannot read"):
        keys.read_private_key(tmp_path / "missing.key", "hello")
    p384 = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(BuilderError, match="P-256 keys only"):
        keys.load_public_key(keys.public_key_pem(p384.public_key()))
    with pytest.raises(BuilderError, match="P-256 keys only"):
        keys.decrypt_private_key(keys.encrypt_private_key(p384, "x"), "x")


# ---------------------------------------------------------------- cosign signatures: byte-exact


def test_the_payload_is_what_cosign_signed_in_the_containers_image_fixture() -> None:
    signed = dir_signature(CI / "dir-img-cosign-valid" / "signature-1").blob
    assert cosign.simple_signing_payload(VALID_REFERENCE, VALID_DIGEST) == signed
    assert sha256_digest((CI / "dir-img-cosign-valid" / "manifest.json").read_bytes()) == VALID_DIGEST


def test_the_payload_with_optional_claims_is_what_containers_image_signed() -> None:
    signed = dir_signature(CI / "dir-img-cosign-valid-with-tag" / "signature-1").blob
    optional: dict[str, str | int] = {"timestamp": 1657296609, "creator": "containers/image 5.21.2-dev"}
    assert cosign.simple_signing_payload("192.168.64.2:5000/skopeo-signed:tag", VALID_DIGEST, optional) == signed


def test_payload_manifest_and_config_equal_a_cosign_wire_capture() -> None:
    captured = (WIRE / "sig-manifest.json").read_bytes()
    payload = cosign.simple_signing_payload("registry.127-0-10-80.nip.io/alpine", WIRE_DIGEST)
    assert payload == (WIRE / "payload.json").read_bytes()
    annotation = json.loads(captured)["layers"][0]["annotations"][cosign.SIGNATURE_ANNOTATION]
    image = cosign.signature_image([cosign.signature_attachment(payload, annotation)])
    assert image.manifest == captured
    # The digests the registry reported for the manifest and config cosign pushed.
    assert image.digest == "sha256:36570d59b0a2ce9a2ae9da089e72b45c4b51c11bf9a45050dd8cd42e4cb638f4"
    assert image.config_digest == "sha256:d748d2b76ebf8a245176858c537a245f62f4cd9271dcad170c107bd399384703"
    assert image.media_type == "application/vnd.oci.image.manifest.v1+json"


def test_config_bytes_match_the_research_vector_and_grow_per_layer() -> None:
    first = dir_signature(CI / "dir-img-cosign-valid" / "signature-1")
    second = dir_signature(CI / "unknown-cosign-key.signature")
    zero = "0001-01-01T00:00:00Z"
    assert (
        oci.config_bytes([first.layer])
        == (
            f'{{"architecture":"","created":"{zero}","history":[{{"created":"{zero}"}}],"os":"",'
            f'"rootfs":{{"type":"layers","diff_ids":["{first.layer.digest}"]}},"config":{{}}}}'
        ).encode()
    )
    two = json.loads(oci.config_bytes([first.layer, second.layer]))
    assert two["history"] == [{"created": zero}] * 2
    assert two["rootfs"]["diff_ids"] == [first.layer.digest, second.layer.digest]


def test_tags() -> None:
    assert cosign.signature_tag(VALID_DIGEST) == "sha256-" + VALID_DIGEST[7:] + ".sig"
    assert dsse.attestation_tag(VALID_DIGEST) == "sha256-" + VALID_DIGEST[7:] + ".att"
    with pytest.raises(BuilderError, match="not a digest"):
        cosign.signature_tag("sha256:ABC")


def test_go_json_escapes_as_go_does() -> None:
    assert go_json({"a": "<&>\u2028é\n", "b": None}) == '{"a":"\\u003c\\u0026\\u003e\\u2028é\\n","b":null}'.encode()


# ---------------------------------------------------------------- cosign signatures: verifying real ones


def test_a_real_cosign_signature_verifies_with_cosign_pub(cosign_pub: keys.PublicKey) -> None:
    [verdict] = verify(dir_signature(CI / "dir-img-cosign-valid" / "signature-1"), key=cosign_pub, digest=VALID_DIGEST)
    assert verdict.ok, verdict.line()
    assert verdict.claims is not None
    assert verdict.claims["critical"]["identity"]["docker-reference"] == VALID_REFERENCE


def test_a_real_cosign_signature_is_refused_with_another_key() -> None:
    [verdict] = verify(
        dir_signature(CI / "dir-img-cosign-valid" / "signature-1"),
        key=keys.read_public_key(CI / "cosign2.pub"),
        digest=VALID_DIGEST,
    )
    assert verdict.reason == "bad signature: it does not verify with this key"


def test_a_real_cosign_signature_is_refused_for_another_digest(cosign_pub: keys.PublicKey) -> None:
    modified = sha256_digest((CI / "dir-img-cosign-modified-manifest" / "manifest.json").read_bytes())
    [verdict] = verify(dir_signature(CI / "dir-img-cosign-valid" / "signature-1"), key=cosign_pub, digest=modified)
    assert verdict.reason == f"signed for another digest: {VALID_DIGEST}, not {modified}"


def test_two_real_signatures_both_verify_and_a_mixed_pair_verifies_one(cosign_pub: keys.PublicKey) -> None:
    valid = dir_signature(CI / "dir-img-cosign-valid" / "signature-1")
    second = dir_signature(CI / "dir-img-cosign-valid-2" / "signature-2")
    with_tag = dir_signature(CI / "dir-img-cosign-valid-with-tag" / "signature-1")  # containers/image's payload
    assert [v.ok for v in verify(valid, second, with_tag, key=cosign_pub, digest=VALID_DIGEST)] == [True] * 3
    unknown = dir_signature(CI / "unknown-cosign-key.signature")
    mixed = verify(unknown, valid, key=cosign_pub, digest=VALID_DIGEST)
    assert [v.ok for v in mixed] == [False, True]
    assert mixed[0].line().startswith(f"layer 1 ({unknown.layer.digest}): bad signature")


def test_another_kind_of_attachment_is_not_a_signature(cosign_pub: keys.PublicKey) -> None:
    [verdict] = verify(
        dir_signature(CI / "dir-img-cosign-other-attachment" / "signature-1"), key=cosign_pub, digest=VALID_DIGEST
    )
    assert verdict.reason == "media type text/plain is not a cosign simple-signing payload"


# ---------------------------------------------------------------- cosign signatures: tampering


def tampered_verdict(
    attachment: oci.Attachment, key: keys.PublicKey, edit: Callable[[dict[str, Any]], object]
) -> oci.LayerVerdict:
    """Verify after editing the first layer descriptor of the manifest."""
    manifest = json.loads(cosign.signature_image([attachment]).manifest)
    edit(manifest["layers"][0])
    [verdict] = cosign.verify_signatures(json.dumps(manifest).encode(), blobs_of(attachment), key, VALID_DIGEST)
    return verdict


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda d: d["annotations"].update({cosign.SIGNATURE_ANNOTATION: "%%%"}), "garbled signature annotation"),
        (lambda d: d["annotations"].update({cosign.SIGNATURE_ANNOTATION: "aGVsbG8="}), "garbled signature annotation"),
        (lambda d: d.pop("annotations"), "no dev.cosignproject.cosign/signature annotation"),
        (lambda d: d.update(digest=OTHER_DIGEST), "blob missing"),
        (lambda d: d.update(size=1), "blob is 261 bytes, its descriptor says 1"),
        (lambda d: d.update(size="232"), "garbled layer descriptor: no size"),
        (lambda d: d["annotations"].update(x=1), "garbled layer annotations"),
        (lambda d: d.update(size=oci.MAX_BLOB + 1), "over cosign's 128 MiB limit"),
    ],
)
def test_a_tampered_layer_fails_with_its_reason(
    cosign_pub: keys.PublicKey, edit: Callable[[dict[str, Any]], object], reason: str
) -> None:
    verdict = tampered_verdict(dir_signature(CI / "dir-img-cosign-valid" / "signature-1"), cosign_pub, edit)
    assert not verdict.ok and verdict.reason is not None and reason in verdict.reason


def test_a_garbled_blob_fails(cosign_pub: keys.PublicKey) -> None:
    attachment = dir_signature(CI / "dir-img-cosign-valid" / "signature-1")
    image = cosign.signature_image([attachment])
    garbled = {attachment.layer.digest: attachment.blob.replace(b"634a8f", b"634a8e")}
    [verdict] = cosign.verify_signatures(image.manifest, garbled, cosign_pub, VALID_DIGEST)
    assert verdict.reason == "blob does not match its digest"


def test_a_signed_payload_that_is_not_a_cosign_payload_fails(private_key: keys.PrivateKey) -> None:
    public = private_key.public_key()
    atomic = {"critical": {"image": {"docker-manifest-digest": VALID_DIGEST}, "type": "atomic container signature"}}
    for payload, reason in [
        (b"{not json", "garbled payload: not JSON"),
        (b'{"critical":{}}', "garbled payload: no critical.image.docker-manifest-digest"),
        (go_json(atomic), "payload type is 'atomic container signature'"),
    ]:
        [verdict] = verify(cosign.sign_payload(private_key, payload), key=public, digest=VALID_DIGEST)
        assert verdict.reason is not None and verdict.reason.startswith(reason)


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (b'{"schemaVersion":2,"layers":[', "not JSON"),
        (b"[]", "not a schema 2 image manifest"),
        (b'{"schemaVersion":2,"config":{"mediaType":"x"}}', "no layers list"),
        (b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json"}', "not an image manifest"),
    ],
)
def test_a_garbled_sig_manifest_is_exit_1_on_one_line(
    cosign_pub: keys.PublicKey, manifest: bytes, message: str
) -> None:
    with pytest.raises(CheckFailed, match=message) as caught:
        cosign.verify_signatures(manifest, {}, cosign_pub, VALID_DIGEST)
    assert caught.value.exit_code == 1 and len(caught.value.lines()) == 1


# ---------------------------------------------------------------- cosign signatures: round trips and appending


def test_keygen_sign_verify_round_trip(tmp_path: Path) -> None:
    key_path, pub_path = keys.write_key_pair(tmp_path / "cosign", PASSWORD)
    signed = cosign.sign_image(keys.read_private_key(key_path, PASSWORD), "registry.site:5000/jetson/l4t", VALID_DIGEST)
    assert signed.layer.media_type == cosign.SIMPLE_SIGNING_MEDIA_TYPE
    assert list(signed.layer.annotations) == [cosign.SIGNATURE_ANNOTATION]
    [verdict] = verify(signed, key=keys.read_public_key(pub_path), digest=VALID_DIGEST)
    assert verdict.ok
    [other] = verify(signed, key=keys.read_public_key(pub_path), digest=OTHER_DIGEST)
    assert other.reason == f"signed for another digest: {VALID_DIGEST}, not {OTHER_DIGEST}"


def test_appending_keeps_existing_layers_byte_for_byte_and_skips_duplicates(private_key: keys.PrivateKey) -> None:
    captured = (WIRE / "sig-manifest.json").read_bytes()
    ours = cosign.sign_image(private_key, "registry.127-0-10-80.nip.io/alpine", WIRE_DIGEST)
    appended = cosign.append_signature(captured, ours, private_key.public_key())
    assert appended is not None
    layers = json.loads(appended.manifest)["layers"]
    assert layers[0] == json.loads(captured)["layers"][0]
    assert layers[1] == json.loads(go_json(ours.layer.descriptor()))
    assert json.loads(appended.config)["rootfs"]["diff_ids"] == [layers[0]["digest"], layers[1]["digest"]]
    assert appended.manifest.startswith(captured[: captured.index(b'"config"')])
    # Signing the same payload again with the same key gives another ECDSA signature; cosign skips it all the same.
    again = cosign.sign_image(private_key, "registry.127-0-10-80.nip.io/alpine", WIRE_DIGEST)
    assert again.layer.annotations != ours.layer.annotations
    assert cosign.append_signature(appended.manifest, again, private_key.public_key()) is None
    other = keys.generate_private_key()
    signed_by_other = cosign.sign_image(other, "registry.127-0-10-80.nip.io/alpine", WIRE_DIGEST)
    assert cosign.append_signature(appended.manifest, signed_by_other, other.public_key()) is not None
    first = cosign.append_signature(None, ours, private_key.public_key())
    assert first is not None and first.manifest == cosign.signature_image([ours]).manifest


def test_appending_to_a_manifest_with_a_garbled_layer_is_refused(private_key: keys.PrivateKey) -> None:
    manifest = json.loads((WIRE / "sig-manifest.json").read_bytes())
    manifest["layers"][0]["size"] = "big"
    ours = cosign.sign_image(private_key, "r.site/x", WIRE_DIGEST)
    with pytest.raises(CheckFailed, match="garbled layer 1"):
        cosign.append_signature(json.dumps(manifest).encode(), ours, private_key.public_key())


def test_bad_inputs_to_signing_are_exit_2(private_key: keys.PrivateKey) -> None:
    for reference, digest in [
        ("r.site/x", "sha256:abc"),
        ("r.site/x@sha256:" + "a" * 64, VALID_DIGEST),
        ("", VALID_DIGEST),
    ]:
        with pytest.raises(BuilderError) as caught:
            cosign.sign_image(private_key, reference, digest)
        assert caught.value.exit_code == 2


# ---------------------------------------------------------------- DSSE and in-toto


def test_pae_known_answers_from_the_dsse_spec_and_go_securesystemslib() -> None:
    assert dsse.pae("", b"") == b"DSSEv1 0  0 "
    assert dsse.pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )
    assert (
        dsse.pae("http://example.com/HelloWorld", "ಠ".encode())
        == "DSSEv1 29 http://example.com/HelloWorld 3 ಠ".encode()
    )
    body = b'{"_type":"https://in-toto.io/Statement/v0.1"}'
    assert dsse.pae(dsse.IN_TOTO_PAYLOAD_TYPE, body) == b"DSSEv1 28 application/vnd.in-toto+json 45 " + body


def test_predicate_types_are_the_uris_cosign_matches() -> None:
    assert dsse.predicate_type("spdxjson") == "https://spdx.dev/Document"
    assert dsse.predicate_type("cyclonedx") == "https://cyclonedx.org/bom"
    assert dsse.predicate_type("slsaprovenance1") == "https://slsa.dev/provenance/v1"
    assert dsse.predicate_type("https://example.com/predicate/v2") == "https://example.com/predicate/v2"
    for bad in ["spdx-json", "not a uri", ""]:
        with pytest.raises(UsageError):
            dsse.predicate_type(bad)


def test_the_statement_and_envelope_have_cosigns_shape(private_key: keys.PrivateKey) -> None:
    body = dsse.statement("registry.site/jetson/l4t", VALID_DIGEST, dsse.SPDX, {"spdxVersion": "SPDX-2.3"})
    assert body == (
        b'{"_type":"https://in-toto.io/Statement/v0.1","subject":[{"name":"registry.site/jetson/l4t","digest":'
        b'{"sha256":"' + VALID_DIGEST[7:].encode() + b'"}}],"predicateType":"https://spdx.dev/Document",'
        b'"predicate":{"spdxVersion":"SPDX-2.3"}}'
    )
    v1 = json.loads(dsse.statement(None, VALID_DIGEST, dsse.SPDX, {}, statement_type=dsse.STATEMENT_V1))
    assert v1["_type"] == "https://in-toto.io/Statement/v1" and v1["subject"] == [
        {"digest": {"sha256": VALID_DIGEST[7:]}}
    ]
    envelope = json.loads(dsse.sign_envelope(private_key, body))
    assert list(envelope) == ["payload", "payloadType", "signatures"]
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    assert list(envelope["signatures"][0]) == ["sig"]
    assert base64.b64decode(envelope["payload"]) == body


def test_the_att_layer_is_what_cosign_writes(private_key: keys.PrivateKey) -> None:
    attachment = dsse.attest(private_key, "registry.site/x", VALID_DIGEST, dsse.CYCLONEDX, {"bomFormat": "CycloneDX"})
    size, digest = len(attachment.blob), "sha256:" + hashlib.sha256(attachment.blob).hexdigest()
    assert go_json(attachment.layer.descriptor()).decode() == (
        f'{{"mediaType":"application/vnd.dsse.envelope.v1+json","size":{size},"digest":"{digest}",'
        '"annotations":{"dev.cosignproject.cosign/signature":"","predicateType":"https://cyclonedx.org/bom"}}'
    )
    image = dsse.attestation_image([attachment])
    assert image.manifest == cosign.signature_image([attachment]).manifest  # same image layout as .sig


def test_attest_verify_round_trip(tmp_path: Path) -> None:
    key_path, pub_path = keys.write_key_pair(tmp_path / "cosign", PASSWORD)
    key, public = keys.read_private_key(key_path, PASSWORD), keys.read_public_key(pub_path)
    sbom = dsse.attest(
        key, "registry.site/x", VALID_DIGEST, dsse.predicate_type("spdxjson"), {"spdxVersion": "SPDX-2.3"}
    )
    provenance = dsse.attest(key, "registry.site/x", VALID_DIGEST, dsse.SLSA_PROVENANCE_V1, {"buildDefinition": {}})
    image = dsse.attestation_image([sbom, provenance])
    verdicts = dsse.verify_attestations(image.manifest, blobs_of(sbom, provenance), public, VALID_DIGEST)
    assert all(v.ok for v in verdicts)
    assert [v.claims["predicateType"] for v in verdicts if v.claims] == [dsse.SPDX, dsse.SLSA_PROVENANCE_V1]
    assert dsse.read_statement(dsse.open_envelope(sbom.blob, public))["predicate"] == {"spdxVersion": "SPDX-2.3"}


def att_verdict(attachment: oci.Attachment, key: keys.PublicKey, digest: str = VALID_DIGEST) -> oci.LayerVerdict:
    image = dsse.attestation_image([attachment])
    [verdict] = dsse.verify_attestations(image.manifest, blobs_of(attachment), key, digest)
    return verdict


def test_attestation_tampering_fails_with_its_reason(private_key: keys.PrivateKey) -> None:
    public = private_key.public_key()
    good = dsse.attest(private_key, "r.site/x", VALID_DIGEST, dsse.SPDX, {})
    assert att_verdict(good, public).ok
    assert att_verdict(good, keys.generate_private_key().public_key()).reason == (
        "bad signature: the envelope does not verify with this key"
    )
    assert (
        att_verdict(good, public, OTHER_DIGEST).reason
        == f"subject is another digest: {VALID_DIGEST}, not {OTHER_DIGEST}"
    )
    other_subject = dsse.attest(private_key, "r.site/x", OTHER_DIGEST, dsse.SPDX, {})
    assert att_verdict(other_subject, public).reason == f"subject is another digest: {OTHER_DIGEST}, not {VALID_DIGEST}"
    truncated = dsse.attestation_attachment(good.blob[: len(good.blob) // 2], dsse.SPDX)
    assert att_verdict(truncated, public).reason == "garbled envelope: not JSON (truncated?)"
    envelope = json.loads(good.blob)
    for edit, reason in [
        ({"payloadType": "application/json"}, "envelope payloadType is application/json"),
        ({"payload": "***"}, "garbled envelope: payload is not base64"),
        ({"signatures": []}, "garbled envelope: no signatures"),
        ({"signatures": [{"sig": "***"}]}, "garbled envelope: a signature is not base64"),
        ({"payload": base64.b64encode(b"{}").decode()}, "bad signature"),
    ]:
        edited = dsse.attestation_attachment(json.dumps(envelope | edit).encode(), dsse.SPDX)
        verdict = att_verdict(edited, public)
        assert verdict.reason is not None and verdict.reason.startswith(reason), (edit, verdict.reason)
    mislabelled = dsse.attestation_attachment(good.blob, dsse.CYCLONEDX)
    assert att_verdict(mislabelled, public).reason == (
        "predicateType annotation https://cyclonedx.org/bom differs from the signed https://spdx.dev/Document"
    )
    unreadable = oci.Attachment.of(dsse.DSSE_MEDIA_TYPE, good.blob, {"predicateType": dsse.SPDX})
    assert att_verdict(unreadable, public).reason == (
        "no dev.cosignproject.cosign/signature annotation (cosign cannot read the layer)"
    )
    not_a_statement = dsse.attestation_attachment(dsse.sign_envelope(private_key, b'{"_type":"x"}'), dsse.SPDX)
    assert att_verdict(not_a_statement, public).reason == "garbled statement: not an in-toto v0.1 or v1 statement"


def test_a_truncated_envelope_is_one_line(private_key: keys.PrivateKey) -> None:
    envelope = dsse.sign_envelope(private_key, dsse.statement("r.site/x", VALID_DIGEST, dsse.SPDX, {}))
    with pytest.raises(CheckFailed) as caught:
        dsse.open_envelope(envelope[:-7], private_key.public_key())
    assert caught.value.exit_code == 1
    assert caught.value.lines() == ["error: garbled envelope: not JSON (truncated?)"]


def test_a_real_cosign_envelope_parses_and_is_not_ours(cosign_pub: keys.PublicKey) -> None:
    envelope = (COSIGN_KEYS / "policy-valid-custom.dsse.json").read_bytes()
    document = json.loads(envelope)
    claims = dsse.read_statement(base64.b64decode(document["payload"]))
    assert claims["_type"] == dsse.STATEMENT_V01
    assert claims["predicateType"] == dsse.predicate_type("custom")
    digest = "sha256:" + claims["subject"][0]["digest"]["sha256"]
    verdict = att_verdict(dsse.attestation_attachment(envelope, claims["predicateType"]), cosign_pub, digest)
    assert verdict.reason == "bad signature: the envelope does not verify with this key"


def test_appending_attestations_and_replacing_one_type(private_key: keys.PrivateKey) -> None:
    sbom = dsse.attest(private_key, "r.site/x", VALID_DIGEST, dsse.SPDX, {"v": 1})
    provenance = dsse.attest(private_key, "r.site/x", VALID_DIGEST, dsse.SLSA_PROVENANCE_V1, {})
    newer = dsse.attest(private_key, "r.site/x", VALID_DIGEST, dsse.SPDX, {"v": 2})
    first = dsse.append_attestation(None, sbom)
    both = dsse.append_attestation(first.manifest, provenance)
    appended = dsse.append_attestation(both.manifest, newer)
    replaced = dsse.append_attestation(both.manifest, newer, replace=True)
    assert [layer["digest"] for layer in json.loads(appended.manifest)["layers"]] == [
        sbom.layer.digest,
        provenance.layer.digest,
        newer.layer.digest,
    ]
    assert [layer["digest"] for layer in json.loads(replaced.manifest)["layers"]] == [
        provenance.layer.digest,
        newer.layer.digest,
    ]
    assert dsse.append_attestation(appended.manifest, newer).manifest == appended.manifest


# ---------------------------------------------------------------- Sigstore bundle as an OCI 1.1 referrer

SUBJECT = bundle.Subject("application/vnd.oci.image.manifest.v1+json", 1234, VALID_DIGEST)
CREATED = "2026-01-02T03:04:05Z"


def test_the_bundle_has_the_shape_cosign_v3_writes(private_key: keys.PrivateKey, cosign_pub: keys.PublicKey) -> None:
    assert bundle.sign_statement(VALID_DIGEST) == (
        b'{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"'
        + VALID_DIGEST[7:].encode()
        + b'"}}],"predicateType":"https://sigstore.dev/cosign/sign/v1","predicate":{}}'
    )
    made = json.loads(bundle.make_bundle(private_key, bundle.sign_statement(VALID_DIGEST)))
    assert list(made) == ["mediaType", "verificationMaterial", "dsseEnvelope"]
    assert made["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert list(made["dsseEnvelope"]) == ["payload", "payloadType", "signatures"]
    spki = pem_decode((CI / "cosign.pub").read_bytes())[1]
    assert keys.public_key_hint(cosign_pub) == base64.b64encode(hashlib.sha256(spki).digest()).decode()


def test_the_referrer_manifest_is_what_cosigns_write_referrer_puts(private_key: keys.PrivateKey) -> None:
    made = bundle.make_bundle(private_key, bundle.sign_statement(VALID_DIGEST))
    manifest = bundle.referrer_manifest(made, SUBJECT, bundle.COSIGN_SIGN_PREDICATE_TYPE, CREATED)
    document = json.loads(manifest)
    assert list(document) == [
        "schemaVersion",
        "mediaType",
        "config",
        "layers",
        "annotations",
        "subject",
        "artifactType",
    ]
    assert document["config"] == {
        "mediaType": "application/vnd.oci.empty.v1+json",
        "size": 2,
        "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
        "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json",
    }
    assert sha256_digest(bundle.EMPTY_CONFIG) == document["config"]["digest"]
    assert document["layers"] == [
        {"mediaType": bundle.BUNDLE_MEDIA_TYPE, "size": len(made), "digest": sha256_digest(made)}
    ]
    assert document["annotations"] == {
        "dev.sigstore.bundle.content": "dsse-envelope",
        "dev.sigstore.bundle.predicateType": "https://sigstore.dev/cosign/sign/v1",
        "org.opencontainers.image.created": CREATED,
    }
    assert document["subject"] == {"mediaType": SUBJECT.media_type, "size": 1234, "digest": VALID_DIGEST}
    assert bundle.fallback_tag(VALID_DIGEST) == "sha256-" + VALID_DIGEST[7:]


def test_the_fallback_index_lists_each_referrer_once_with_its_annotations(private_key: keys.PrivateKey) -> None:
    first = bundle.referrer_manifest(bundle.make_bundle(private_key, b"{}"), SUBJECT, dsse.SPDX, CREATED)
    second = bundle.referrer_manifest(bundle.make_bundle(private_key, b"[]"), SUBJECT, dsse.CYCLONEDX, CREATED)
    index = bundle.add_to_referrers_index(None, first)
    assert index is not None
    assert bundle.add_to_referrers_index(index, first) is None
    both = bundle.add_to_referrers_index(index, second)
    assert both is not None
    document = json.loads(both)
    assert document["mediaType"] == "application/vnd.oci.image.index.v1+json"
    entries = document["manifests"]
    assert [entry["digest"] for entry in entries] == sorted([sha256_digest(first), sha256_digest(second)])
    assert {entry["annotations"]["dev.sigstore.bundle.predicateType"] for entry in entries} == {
        dsse.SPDX,
        dsse.CYCLONEDX,
    }
    assert {entry["artifactType"] for entry in entries} == {bundle.BUNDLE_MEDIA_TYPE}
    assert sorted(bundle.bundle_referrers(both)) == sorted([sha256_digest(first), sha256_digest(second)])
    with pytest.raises(CheckFailed, match="garbled"):
        bundle.add_to_referrers_index(b"{", first)


def test_referrer_bundles_verify_and_tampering_fails_with_its_reason(private_key: keys.PrivateKey) -> None:
    public = private_key.public_key()
    made = bundle.make_bundle(private_key, bundle.sign_statement(VALID_DIGEST))
    manifest = bundle.referrer_manifest(made, SUBJECT, bundle.COSIGN_SIGN_PREDICATE_TYPE, CREATED)
    blobs = {sha256_digest(made): made}
    verdict = bundle.verify_referrer(manifest, blobs, public, VALID_DIGEST)
    assert verdict.ok and verdict.claims is not None
    assert verdict.claims["predicateType"] == bundle.COSIGN_SIGN_PREDICATE_TYPE
    assert bundle.verify_bundle(made, public, VALID_DIGEST)["_type"] == dsse.STATEMENT_V1
    other_key = keys.generate_private_key().public_key()
    assert bundle.verify_referrer(manifest, blobs, other_key, VALID_DIGEST).reason == (
        "bad signature: the envelope does not verify with this key"
    )
    assert bundle.verify_referrer(manifest, blobs, public, OTHER_DIGEST).reason == (
        f"referrer subject is another digest: {VALID_DIGEST}, not {OTHER_DIGEST}"
    )
    about_other = bundle.make_bundle(private_key, bundle.sign_statement(OTHER_DIGEST))
    with pytest.raises(CheckFailed, match=f"subject is another digest: {OTHER_DIGEST}, not {VALID_DIGEST}"):
        bundle.verify_bundle(about_other, public, VALID_DIGEST)
    with pytest.raises(CheckFailed) as caught:
        bundle.verify_bundle(made[:-9], public, VALID_DIGEST)
    assert caught.value.lines() == ["error: garbled bundle: not JSON (truncated?)"]
    old = json.dumps(json.loads(made) | {"mediaType": "application/vnd.dev.sigstore.bundle+json;version=0.2"})
    with pytest.raises(CheckFailed, match=r"is not v0\.3 or later"):
        bundle.verify_bundle(old.encode(), public, VALID_DIGEST)
    two_layers = json.loads(manifest)
    two_layers["layers"] *= 2
    assert bundle.verify_referrer(json.dumps(two_layers).encode(), blobs, public, VALID_DIGEST).reason == (
        "garbled referrer manifest: not exactly one layer descriptor"
    )
    assert bundle.verify_referrer(manifest, {}, public, VALID_DIGEST).reason == "blob missing"
