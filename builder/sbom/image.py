"""What syft is pointed at for an IMAGE (parsed by `builder.upstream.images.parse_image`).

`single_image_layout` reads an OCI layout's index.json and lays out a one-image view of it for
syft (syft reads only layouts that hold exactly one image).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.errors import FileProblem, UsageError
from builder.upstream.images import DIGEST, REF_NAME, ImageRef, is_attachment

INDEX_TYPES = {"application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"}


def syft_source(ref: ImageRef, layout: Path | None = None) -> str:
    """The explicit syft source (no scheme guessing, no daemon probed); `layout` replaces the
    layout directory (a one-image view of it)."""
    if ref.kind == "oci":
        return f"oci-dir:{layout or ref.layout}"
    where = f"@{ref.digest}" if ref.digest else f":{ref.tag}"
    return f"registry:{ref.registry}/{ref.repository}{where}"


def default_name(ref: ImageRef, layout_tag: str | None = None) -> str:
    """A name for the scanned source that no mirror or path changes: the repository below its
    registry, or the layout's tag."""
    if ref.kind == "registry":
        return str(ref.repository)
    return ref.tag or layout_tag or "image"


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path.parent} is not an OCI image layout (it has no {path.name})") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise UsageError(f"{path}: not a JSON {what} ({error})") from None
    except OSError as error:
        raise FileProblem(error) from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: not a JSON {what}")
    return data


def choose_manifest(index: dict[str, Any], tag: str | None, where: str, digest: str | None = None) -> dict[str, Any]:
    """The descriptor of the image in a layout's index: the one with `digest`, the one tagged `tag`,
    else the only image (signatures and attestations kept beside it do not count)."""
    manifests = [m for m in index.get("manifests", []) if isinstance(m, dict)]
    if digest is not None:
        manifests = [m for m in manifests if m.get("digest") == digest]
        if not manifests:
            raise UsageError(f"{where} has no image {digest}")
        tag = None
    else:
        manifests = [m for m in manifests if not is_attachment(str(m.get("annotations", {}).get(REF_NAME, "")))]
    tags = sorted(
        {str(m.get("annotations", {}).get(REF_NAME)) for m in manifests if m.get("annotations", {}).get(REF_NAME)}
    )
    if tag is not None:
        chosen = [m for m in manifests if m.get("annotations", {}).get(REF_NAME) == tag]
        if not chosen:
            raise UsageError(
                f"{where} has no image tagged '{tag}'",
                hint=f"its tags: {', '.join(tags)}" if tags else "it has no tags",
            )
        if len({str(m.get("digest")) for m in chosen}) > 1:
            raise UsageError(f"{where} tags {len(chosen)} different images '{tag}'")
    elif len(manifests) != 1:
        if not manifests:
            raise UsageError(f"{where} holds no image")
        raise UsageError(
            f"{where} holds {len(manifests)} images; name one as oci:PATH:TAG",
            hint=f"its tags: {', '.join(tags)}" if tags else None,
        )
    else:
        chosen = manifests
    descriptor = chosen[0]
    digest = str(descriptor.get("digest", ""))
    if not DIGEST.match(digest):
        raise UsageError(f"{where}: the image's descriptor has no sha256 digest ({digest or 'none'})")
    if descriptor.get("mediaType") in INDEX_TYPES:
        raise UsageError(f"{where}: {digest} is an image index, not one platform's image; copy out one platform first")
    return descriptor


@dataclass(frozen=True)
class LayoutImage:
    """The image chosen in a layout, as a one-image layout syft can read."""

    layout: Path
    digest: str
    tag: str | None


def layout_descriptor(ref: ImageRef) -> dict[str, Any]:
    """The descriptor of the image `ref` chooses in its layout's index."""
    assert ref.layout is not None
    index = _read_json(ref.layout / "index.json", "OCI image index")
    return choose_manifest(index, ref.tag, f"oci:{ref.layout}", ref.digest)


def descriptor_tag(descriptor: dict[str, Any]) -> str | None:
    tag = descriptor.get("annotations", {}).get(REF_NAME)
    return tag if isinstance(tag, str) else None


def single_image_layout(ref: ImageRef, into: Path) -> LayoutImage:
    """A layout at `into` that holds only the chosen image of `ref`'s layout (its blobs are the
    original's, linked): its path, the image's manifest digest and tag."""
    assert ref.layout is not None
    descriptor = layout_descriptor(ref)
    digest = str(descriptor["digest"])
    blob = ref.layout / "blobs" / "sha256" / digest.removeprefix("sha256:")
    if not blob.is_file():
        raise UsageError(f"oci:{ref.layout}: the manifest {digest} is not in its blobs")
    into.mkdir(parents=True)
    (into / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}\n')
    (into / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [descriptor]}) + "\n")
    (into / "blobs").symlink_to((ref.layout / "blobs").resolve(), target_is_directory=True)
    return LayoutImage(into, digest, descriptor_tag(descriptor))
