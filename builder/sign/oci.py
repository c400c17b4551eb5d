"""The small OCI image cosign keeps signatures or attestations in, under the tag `sha256-<hex>.sig` / `.att`.

Bytes are what go-containerregistry writes (cosign builds these images with it): same key order, same config.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from builder.errors import CheckFailed
from builder.sign.encoding import DIGEST, check_digest, go_json, sha256_digest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"  # COSIGN_DOCKER_MEDIA_TYPES=1
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MAX_LAYERS = 1000  # cosign reads no more than this many signatures or attestations per image
MAX_BLOB = 128 * 1024 * 1024  # cosign's default COSIGN_MAX_ATTACHMENT_SIZE
_ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time.Time, which ggcr writes for every unset "created"
_EXTRA_KEYS = ("data", "urls", "platform", "artifactType")  # descriptor fields ggcr keeps besides the four we use


@dataclass(frozen=True)
class Layer:
    """One layer descriptor of a signature image; `extra` keeps other descriptor fields of a layer read back."""

    media_type: str
    size: int
    digest: str
    annotations: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, object] = field(default_factory=dict)

    def descriptor(self) -> dict[str, object]:
        """The descriptor as ggcr orders it: mediaType, size, digest, data, urls, annotations, platform, artifactType."""
        out: dict[str, object] = {"mediaType": self.media_type, "size": self.size, "digest": self.digest}
        for key in ("data", "urls"):
            if key in self.extra:
                out[key] = self.extra[key]
        if self.annotations:
            out["annotations"] = dict(sorted(self.annotations.items()))  # Go sorts map keys
        for key in ("platform", "artifactType"):
            if key in self.extra:
                out[key] = self.extra[key]
        return out


@dataclass(frozen=True)
class Attachment:
    """One signature or attestation: the blob to upload and the layer that names it."""

    blob: bytes
    layer: Layer

    @classmethod
    def of(cls, media_type: str, blob: bytes, annotations: Mapping[str, str]) -> Attachment:
        """The attachment for an uncompressed blob, as cosign's static layers describe one."""
        return cls(blob, Layer(media_type, len(blob), sha256_digest(blob), dict(annotations)))


@dataclass(frozen=True)
class Garbled:
    """A layer descriptor that could not be read, and why."""

    index: int
    reason: str


@dataclass(frozen=True)
class ParsedImage:
    """A signature image's manifest, read back; garbled layer descriptors are kept as `Garbled`."""

    media_type: str | None
    config_media_type: str
    layers: tuple[Layer | Garbled, ...]
    annotations: Mapping[str, str]


@dataclass(frozen=True)
class SignatureImage:
    """What to push: the manifest (PUT under the tag, with media type `media_type`) and its config blob."""

    manifest: bytes
    config: bytes
    media_type: str

    @property
    def digest(self) -> str:
        """The manifest's digest."""
        return sha256_digest(self.manifest)

    @property
    def config_digest(self) -> str:
        """The config blob's digest."""
        return sha256_digest(self.config)


@dataclass(frozen=True)
class LayerVerdict:
    """The verification result for one layer: `reason` is None when it verified."""

    index: int
    digest: str | None
    reason: str | None
    claims: Mapping[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """Whether the layer carries a valid signature over the expected digest."""
        return self.reason is None

    def line(self) -> str:
        """One line for a report: which layer, and what was wrong with it."""
        where = f"layer {self.index + 1}" + (f" ({self.digest})" if self.digest else "")
        return f"{where}: {self.reason or 'verified'}"


class Refusal(Exception):
    """Raised while checking one layer; its message is the layer's one-line reason."""


def attachment_tag(digest: str, suffix: str) -> str:
    """The tag cosign stores attachments of `digest` under: sha256-<hex>.<suffix>."""
    return check_digest(digest).replace(":", "-") + f".{suffix}"


def config_bytes(layers: Sequence[Layer]) -> bytes:
    """The config blob ggcr derives from its empty image plus one history entry and diff ID per layer."""
    config: dict[str, object] = {"architecture": "", "created": _ZERO_TIME}
    if layers:  # Go omits an empty history
        config["history"] = [{"created": _ZERO_TIME} for _ in layers]
    # The blobs are stored uncompressed, so each layer's diff ID is its digest; Go writes a nil list as null.
    config |= {"os": "", "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in layers] or None}}
    config["config"] = {}
    return go_json(config)


def build_image(
    layers: Sequence[Layer],
    *,
    media_type: str | None = OCI_MANIFEST,
    config_media_type: str = OCI_CONFIG,
    annotations: Mapping[str, str] | None = None,
) -> SignatureImage:
    """The manifest and config bytes for a signature image holding `layers`, as cosign writes them."""
    if len(layers) > MAX_LAYERS:
        raise CheckFailed(f"{len(layers)} signatures on one image; cosign reads at most {MAX_LAYERS}")
    config = config_bytes(layers)
    manifest: dict[str, object] = {"schemaVersion": 2}
    if media_type:
        manifest["mediaType"] = media_type
    manifest["config"] = {"mediaType": config_media_type, "size": len(config), "digest": sha256_digest(config)}
    manifest["layers"] = [layer.descriptor() for layer in layers]
    if annotations:
        manifest["annotations"] = dict(sorted(annotations.items()))
    return SignatureImage(go_json(manifest), config, media_type or OCI_MANIFEST)


def parse_image(manifest: bytes, *, what: str = "the signature manifest") -> ParsedImage:
    """Read a signature image's manifest back; CheckFailed (one line) if it is not an image manifest at all."""
    try:
        document = json.loads(manifest)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckFailed(f"{what} is not JSON") from None
    if not isinstance(document, dict) or document.get("schemaVersion") != 2:
        raise CheckFailed(f"{what} is not a schema 2 image manifest")
    media_type, config, layers = document.get("mediaType"), document.get("config"), document.get("layers")
    if media_type not in (None, OCI_MANIFEST, DOCKER_MANIFEST):
        raise CheckFailed(f"{what} has media type {media_type}, not an image manifest")
    if not isinstance(config, dict) or not isinstance(config.get("mediaType"), str):
        raise CheckFailed(f"{what} has no config descriptor")
    if not isinstance(layers, list):
        raise CheckFailed(f"{what} has no layers list")
    annotations = document.get("annotations") or {}
    if not _string_map(annotations):
        raise CheckFailed(f"{what} has annotations that are not strings")
    return ParsedImage(
        media_type, config["mediaType"], tuple(_layer(i, raw) for i, raw in enumerate(layers)), annotations
    )


def append_layer(existing: bytes | None, layer: Layer, *, what: str = "the signature manifest") -> SignatureImage:
    """`existing` (None: no image yet) with `layer` added last, as cosign's read-modify-write does."""
    if existing is None:
        return build_image([layer])
    parsed = parse_image(existing, what=what)
    return build_image(
        [*readable_layers(parsed, what=what), layer],
        media_type=parsed.media_type,
        config_media_type=parsed.config_media_type,
        annotations=parsed.annotations,
    )


def readable_layers(parsed: ParsedImage, *, what: str = "the signature manifest") -> list[Layer]:
    """The layers of `parsed`; CheckFailed if any descriptor is garbled, since rewriting would lose it."""
    for layer in parsed.layers:
        if isinstance(layer, Garbled):
            raise CheckFailed(f"{what} has a garbled layer {layer.index + 1}: {layer.reason}")
    return [layer for layer in parsed.layers if isinstance(layer, Layer)]


def verify_layers(
    manifest: bytes, check: Callable[[Layer], Mapping[str, Any]], *, what: str = "the signature manifest"
) -> list[LayerVerdict]:
    """One verdict per layer: `check` returns a passing layer's claims or raises Refusal with its reason."""
    parsed = parse_image(manifest, what=what)
    if len(parsed.layers) > MAX_LAYERS:
        raise CheckFailed(f"{what} has {len(parsed.layers)} layers; cosign reads at most {MAX_LAYERS}")
    verdicts = []
    for index, layer in enumerate(parsed.layers):
        if isinstance(layer, Garbled):
            verdicts.append(LayerVerdict(index, None, layer.reason))
            continue
        try:
            verdicts.append(LayerVerdict(index, layer.digest, None, check(layer)))
        except Refusal as refusal:
            verdicts.append(LayerVerdict(index, layer.digest, str(refusal)))
    return verdicts


def read_blob(layer: Layer, blobs: Mapping[str, bytes]) -> bytes:
    """The layer's blob from `blobs` (digest -> bytes), checked against its descriptor; Refusal otherwise."""
    if layer.size > MAX_BLOB:
        raise Refusal(f"blob of {layer.size} bytes is over cosign's {MAX_BLOB // (1024 * 1024)} MiB limit")
    blob = blobs.get(layer.digest)
    if blob is None:
        raise Refusal("blob missing")
    if sha256_digest(blob) != layer.digest:
        raise Refusal("blob does not match its digest")
    if len(blob) != layer.size:
        raise Refusal(f"blob is {len(blob)} bytes, its descriptor says {layer.size}")
    return blob


def _layer(index: int, raw: object) -> Layer | Garbled:
    if not isinstance(raw, dict):
        return Garbled(index, "garbled layer descriptor: not an object")
    media_type, size, digest, annotations = (raw.get(key) for key in ("mediaType", "size", "digest", "annotations"))
    if not isinstance(media_type, str):
        return Garbled(index, "garbled layer descriptor: no media type")
    if type(size) is not int or size < 0:
        return Garbled(index, "garbled layer descriptor: no size")
    if not isinstance(digest, str) or not DIGEST.fullmatch(digest):
        return Garbled(index, "garbled layer descriptor: no sha256 digest")
    if annotations is None:
        annotations = {}
    if not _string_map(annotations):
        return Garbled(index, "garbled layer annotations: not a map of strings")
    extra = {key: raw[key] for key in _EXTRA_KEYS if key in raw}
    return Layer(media_type, size, digest, annotations, extra)


def _string_map(value: object) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
