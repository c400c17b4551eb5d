"""ECDSA P-256 key pairs in cosign's file formats: the encrypted `cosign.key` and the PKIX `cosign.pub`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, TypeAlias

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from nacl.exceptions import CryptoError
from nacl.secret import SecretBox

from builder.errors import BuilderError, FileProblem
from builder.fsutil import write_atomic_bytes
from builder.sign.encoding import b64decode, b64encode, go_json, pem_decode, pem_encode, sha256_digest

SIGSTORE_LABEL = "ENCRYPTED SIGSTORE PRIVATE KEY"  # what cosign writes today
COSIGN_LABEL = "ENCRYPTED COSIGN PRIVATE KEY"  # what older cosign wrote; still read
PUBLIC_LABEL = "PUBLIC KEY"
# go-securesystemslib's three accepted scrypt sets (legacy, standard, OWASP), all with r=8 and p=1.
SCRYPT_N_ACCEPTED = (32768, 65536, 131072)
SCRYPT_N_WRITTEN = 65536
SALT_BYTES = 32

Password: TypeAlias = str | bytes
PrivateKey: TypeAlias = ec.EllipticCurvePrivateKey
PublicKey: TypeAlias = ec.EllipticCurvePublicKey


def generate_private_key() -> PrivateKey:
    """A fresh ECDSA P-256 private key."""
    return ec.generate_private_key(ec.SECP256R1())


def encrypt_private_key(
    key: PrivateKey,
    password: Password,
    *,
    label: str = SIGSTORE_LABEL,
    scrypt_n: int = SCRYPT_N_WRITTEN,
    salt: bytes | None = None,
    nonce: bytes | None = None,
) -> bytes:
    """`key` as cosign's encrypted PEM (scrypt + NaCl secretbox over PKCS#8); salt and nonce fixed only to reproduce a file."""
    if label not in (SIGSTORE_LABEL, COSIGN_LABEL):
        raise ValueError(f"not a cosign private key label: {label}")
    if scrypt_n not in SCRYPT_N_ACCEPTED:
        raise ValueError(f"cosign reads only scrypt N in {SCRYPT_N_ACCEPTED}")
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    nonce = os.urandom(SecretBox.NONCE_SIZE) if nonce is None else nonce
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    sealed = SecretBox(_scrypt(password, salt, scrypt_n)).encrypt(der, nonce).ciphertext
    document = {
        "kdf": {"name": "scrypt", "params": {"N": scrypt_n, "r": 8, "p": 1}, "salt": b64encode(salt)},
        "cipher": {"name": "nacl/secretbox", "nonce": b64encode(nonce)},
        "ciphertext": b64encode(sealed),
    }
    return pem_encode(label, go_json(document))


def decrypt_private_key(pem: bytes, password: Password, *, source: str = "the private key") -> PrivateKey:
    """The P-256 key in cosign's encrypted PEM; BuilderError (exit 2) naming `source` if it cannot be read."""
    try:
        label, body = pem_decode(pem)
    except ValueError as exc:
        raise BuilderError(f"{source} is not a cosign private key: {exc}") from None
    if label not in (SIGSTORE_LABEL, COSIGN_LABEL):
        raise BuilderError(
            f"{source} holds a '{label}' PEM block, not '{SIGSTORE_LABEL}'",
            hint="convert other keys with 'cosign import-key-pair', or make one with 'build keygen'",
        )
    scrypt_n, salt, nonce, sealed = _envelope(body, source)
    try:
        der = SecretBox(_scrypt(password, salt, scrypt_n)).decrypt(sealed, nonce)
    except CryptoError:
        raise BuilderError(f"cannot decrypt {source}: wrong password, or the file is damaged") from None
    if not _is_pkcs8(der):
        raise BuilderError(
            f"{source} holds a SEC1 'EC PRIVATE KEY', not PKCS#8; cosign refuses it too",
            hint="re-import it with 'cosign import-key-pair'",
        )
    try:
        key = serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise BuilderError(f"{source} does not hold a valid PKCS#8 private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise BuilderError(f"{source} holds a {_describe(key)} key; builder signs with ECDSA P-256 keys only")
    return key


def public_key_pem(key: PublicKey) -> bytes:
    """`key` as a PKIX `PUBLIC KEY` PEM, byte for byte what cosign writes to cosign.pub."""
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public_key(pem: bytes, *, source: str = "the public key") -> PublicKey:
    """The P-256 key in a PKIX `PUBLIC KEY` PEM; BuilderError (exit 2) naming `source` otherwise."""
    try:
        label, der = pem_decode(pem)
    except ValueError as exc:
        raise BuilderError(f"{source} is not a public key: {exc}") from None
    if label != PUBLIC_LABEL:
        raise BuilderError(f"{source} holds a '{label}' PEM block, not '{PUBLIC_LABEL}'")
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm):
        raise BuilderError(f"{source} does not hold a valid public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise BuilderError(f"{source} is a {_describe(key)} key; builder verifies ECDSA P-256 keys only")
    return key


def write_key_pair(
    prefix: Path, password: Password, *, key: PrivateKey | None = None, overwrite: bool = False
) -> tuple[Path, Path]:
    """Write PREFIX.key (mode 0600 from its creation on) and PREFIX.pub as cosign generate-key-pair does."""
    key_path, pub_path = Path(f"{prefix}.key"), Path(f"{prefix}.pub")
    if not overwrite:
        for path in (key_path, pub_path):
            if path.exists():
                raise BuilderError(f"{path} already exists; not overwriting it")
    key = generate_private_key() if key is None else key
    private_pem = encrypt_private_key(key, password)
    try:
        write_atomic_bytes(key_path, private_pem, mode=0o600)
        write_atomic_bytes(pub_path, public_key_pem(key.public_key()), mode=0o644)
    except OSError as exc:
        raise FileProblem(exc) from None
    return key_path, pub_path


def read_private_key(path: Path, password: Password) -> PrivateKey:
    """The key in a cosign.key file, decrypted with `password`."""
    return decrypt_private_key(_read(path), password, source=str(path))


def read_public_key(path: Path) -> PublicKey:
    """The key in a cosign.pub file."""
    return load_public_key(_read(path), source=str(path))


def ecdsa_sign(key: PrivateKey, data: bytes) -> bytes:
    """ECDSA over SHA-256(data), ASN.1 DER, as cosign signs."""
    return key.sign(data, ec.ECDSA(hashes.SHA256()))


def ecdsa_verify(key: PublicKey, signature: bytes, data: bytes) -> bool:
    """Whether `signature` (ASN.1 DER) is `key`'s ECDSA signature over SHA-256(data)."""
    try:
        key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


def public_key_hint(key: PublicKey) -> str:
    """base64(SHA-256(PKIX DER)): the key hint cosign puts in a Sigstore bundle."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return b64encode(bytes.fromhex(sha256_digest(der).removeprefix("sha256:")))


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BuilderError(f"cannot read {path}: {exc.strerror}") from None


def _scrypt(password: Password, salt: bytes, n: int) -> bytes:
    secret = password.encode() if isinstance(password, str) else password
    return Scrypt(salt=salt, length=SecretBox.KEY_SIZE, n=n, r=8, p=1).derive(secret)


def _envelope(body: bytes, source: str) -> tuple[int, bytes, bytes, bytes]:
    """scrypt N, salt, nonce and ciphertext from the JSON inside the PEM block."""
    try:
        document: Any = json.loads(body)
        kdf, cipher = document["kdf"], document["cipher"]
        params = (kdf["params"]["N"], kdf["params"]["r"], kdf["params"]["p"])
        names = (kdf["name"], cipher["name"])
        salt, nonce, sealed = b64decode(kdf["salt"]), b64decode(cipher["nonce"]), b64decode(document["ciphertext"])
    except (ValueError, KeyError, TypeError, AttributeError):
        raise BuilderError(f"{source} is garbled: not cosign's encrypted key document") from None
    if names != ("scrypt", "nacl/secretbox"):
        raise BuilderError(f"{source} uses {names[0]}/{names[1]}; cosign keys use scrypt/nacl/secretbox")
    if any(type(value) is not int for value in params) or params[0] not in SCRYPT_N_ACCEPTED or params[1:] != (8, 1):
        raise BuilderError(f"{source} has unsupported scrypt parameters N={params[0]} r={params[1]} p={params[2]}")
    if len(nonce) != SecretBox.NONCE_SIZE:
        raise BuilderError(f"{source} is garbled: its nonce is {len(nonce)} bytes, not {SecretBox.NONCE_SIZE}")
    return params[0], salt, nonce, sealed


def _is_pkcs8(der: bytes) -> bool:
    """PKCS#8 is SEQUENCE {INTEGER version, SEQUENCE algorithm, ...}; SEC1 has an OCTET STRING after its INTEGER."""
    try:
        tag, start, _ = _der_element(der, 0)
        version_tag, _, version_end = _der_element(der, start)
        algorithm_tag, _, _ = _der_element(der, version_end)
    except (IndexError, ValueError):
        return False
    return (tag, version_tag, algorithm_tag) == (0x30, 0x02, 0x30)


def _der_element(data: bytes, offset: int) -> tuple[int, int, int]:
    """Tag, content start and content end of the DER element at `offset`."""
    tag, length, start = data[offset], data[offset + 1], offset + 2
    if length & 0x80:
        count = length & 0x7F
        if not 0 < count <= 4:
            raise ValueError("unsupported DER length")
        length, start = int.from_bytes(data[start : start + count], "big"), start + count
    if start + length > len(data):
        raise ValueError("truncated DER")
    return tag, start, start + length


def _describe(key: object) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return f"ECDSA {key.curve.name}"
    return type(key).__name__.lstrip("_").removesuffix("PrivateKey").removesuffix("PublicKey") or "unknown"
