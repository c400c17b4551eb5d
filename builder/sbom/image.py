"""What `build sbom IMAGE` names: a registry image by digest or tag, or an image in an OCI layout.

Parsing is pure; `single_image_layout` reads the layout's index.json and lays out a one-image view
of it for syft (syft reads only layouts that hold exactly one image).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from builder.errors import FileProblem, UsageError
from builder.rules.mirrors import plain_http

REF_NAME = "org.opencontainers.image.ref.name"
INDEX_TYPES = {"application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"}
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_REPOSITORY = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*")
_FORMS = "REGISTRY/REPO@sha256:<hex>, REGISTRY/REPO:TAG or oci:PATH[:TAG]"


@dataclass(frozen=True)
class ImageRef:
    """One image to scan. `digest` is the manifest digest asked for (registry) or found (layout)."""

    text: str  # as the user wrote it
    kind: Literal["registry", "oci"]
    registry: str = ""
    repository: str = ""  # the path below the registry
    tag: str | None = None
    digest: str | None = None
    layout: Path | None = None

    @property
    def plain_http(self) -> bool:
        return self.kind == "registry" and plain_http(self.registry)

    def syft_source(self, layout: Path | None = None) -> str:
        """The explicit syft source (no scheme guessing, no daemon probed); `layout` replaces the
        layout directory (a one-image view of it)."""
        if self.kind == "oci":
            return f"oci-dir:{layout or self.layout}"
        where = f"@{self.digest}" if self.digest else f":{self.tag}"
        return f"registry:{self.registry}/{self.repository}{where}"

    def default_name(self, layout_tag: str | None = None) -> str:
        """A name for the scanned source that no mirror or path changes: the repository below its
        registry, or the layout image's tag."""
        if self.kind == "registry":
            return self.repository
        return self.tag or layout_tag or "image"


def parse_image(text: str) -> ImageRef:
    """IMAGE as the command line gives it; anything else is a usage error naming the forms."""
    if text.startswith("oci:"):
        rest = text.removeprefix("oci:")
        directory, sep, label = rest.rpartition(":")
        if sep and directory and _TAG.fullmatch(label):
            return ImageRef(text, "oci", tag=label, layout=Path(directory))
        if not rest:
            raise UsageError(f"IMAGE '{text}' names no directory", hint=f"IMAGE is {_FORMS}")
        return ImageRef(text, "oci", layout=Path(rest))
    name, at, digest = text.partition("@")
    if at and not DIGEST.fullmatch(digest):
        raise UsageError(f"IMAGE '{text}': '{digest}' is not a sha256:<64 hex> digest", hint=f"IMAGE is {_FORMS}")
    registry, slash, path = name.partition("/")
    tag: str | None = None
    repository = path
    if ":" in path.rsplit("/", 1)[-1]:
        repository, _, tag = path.rpartition(":")
    if (
        not slash
        or not ("." in registry or ":" in registry or registry == "localhost")
        or not _REPOSITORY.fullmatch(repository)
        or (tag is not None and not _TAG.fullmatch(tag))
        or (tag is None and not at)
    ):
        raise UsageError(f"IMAGE '{text}' is not an image reference", hint=f"IMAGE is {_FORMS}")
    return ImageRef(text, "registry", registry, repository, tag, digest or None)


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


def choose_manifest(index: dict[str, Any], tag: str | None, where: str) -> dict[str, Any]:
    """The descriptor of the image in a layout's index: the one tagged `tag`, else the only one."""
    manifests = [m for m in index.get("manifests", []) if isinstance(m, dict)]
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
    if not DIGEST.fullmatch(digest):
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


def single_image_layout(ref: ImageRef, into: Path) -> LayoutImage:
    """A layout at `into` that holds only the chosen image of `ref`'s layout (its blobs are the
    original's, linked): its path, the image's manifest digest and tag."""
    assert ref.layout is not None
    index = _read_json(ref.layout / "index.json", "OCI image index")
    descriptor = choose_manifest(index, ref.tag, f"oci:{ref.layout}")
    digest = str(descriptor["digest"])
    blob = ref.layout / "blobs" / "sha256" / digest.removeprefix("sha256:")
    if not blob.is_file():
        raise UsageError(f"oci:{ref.layout}: the manifest {digest} is not in its blobs")
    into.mkdir(parents=True)
    (into / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}\n')
    (into / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [descriptor]}) + "\n")
    (into / "blobs").symlink_to((ref.layout / "blobs").resolve(), target_is_directory=True)
    tag = descriptor.get("annotations", {}).get(REF_NAME)
    return LayoutImage(into, digest, tag if isinstance(tag, str) else None)
