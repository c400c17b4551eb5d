"""What an image adds above its base, read from the layer blobs of an OCI layout: the numbers the
image-size test (tests/test_stack_e2e.py) asserts and benchmarks/image_size.py prints.

The unit is the byte of a layer's uncompressed tar stream: the stream its diff_id hashes and an
engine unpacks. Two sums over the layers above the base's:

- `added`: every byte of those streams.
- `installed`: the bytes of the members that the finished image still holds under the given roots
  (site-packages and the app's directory): each such member's headers (PAX and GNU long-name
  headers included) and data blocks. A member that a later layer deletes or replaces does not count.

`added - installed` is everything else the layers carry: files copied in only to be installed and
deleted (dead weight: a deletion hides a file, the layer below still ships it), whiteouts, the
venv's scripts, the user database, directory entries outside the roots, each layer's closing blocks.
Compressed sizes would mix gzip's ratio into the comparison (Python sources shrink ~4x, a wheel
hardly at all) and `du` counts file-system blocks rather than layer bytes, so neither compares like
with like; the compressed sizes are kept for the report only.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BLOCK = tarfile.BLOCKSIZE
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
INDEX_TYPES = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"


@dataclass(frozen=True)
class AddedBytes:
    layers: int  # layers above the base's
    compressed: int  # their blobs as stored in the layout (what a push or a pull moves)
    added: int  # their uncompressed tar streams
    installed: int  # the part of those streams the finished image holds under the roots
    leftovers: list[tuple[str, int]]  # the largest members outside the installed part: (path, bytes)

    @property
    def ratio(self) -> float:
        return self.added / self.installed


def _blob(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()


def _uncompressed(data: bytes) -> bytes:
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def _member_bytes(member: tarfile.TarInfo) -> int:
    """A member's share of the stream: its headers (from the first extended one) and data blocks."""
    data = member.size if member.isreg() else 0
    return member.offset_data - member.offset + -(-data // BLOCK) * BLOCK


def _under(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == root or path.startswith(root + "/") for root in roots)


def added_bytes(layout: Path, digest: str, base_diff_ids: list[str], roots: tuple[str, ...]) -> AddedBytes:
    """The layers of manifest `digest` in `layout` above a base with `base_diff_ids`, measured.
    `roots` are paths in the image without the leading slash, e.g. `app`."""
    manifest = json.loads(_blob(layout, digest))
    config = json.loads(_blob(layout, manifest["config"]["digest"]))
    diff_ids = config["rootfs"]["diff_ids"]
    if diff_ids[: len(base_diff_ids)] != base_diff_ids:
        raise AssertionError(f"the image is not built on that base: {diff_ids} vs {base_diff_ids}")
    layers = manifest["layers"][len(base_diff_ids) :]
    final: dict[str, tuple[int, int]] = {}  # what the finished image holds: path -> (layer, member bytes)
    shipped: list[tuple[str, int]] = []
    added = compressed = 0
    for number, layer in enumerate(layers):
        compressed += int(layer["size"])
        stream = _uncompressed(_blob(layout, layer["digest"]))
        added += len(stream)
        with tarfile.open(fileobj=io.BytesIO(stream)) as tar:
            for member in tar.getmembers():
                path = member.name.removeprefix("./").strip("/")
                parent, _, name = path.rpartition("/")
                size = _member_bytes(member)
                shipped.append((path, size))
                if name.startswith(WHITEOUT):  # hides what lower layers hold there, never this layer's
                    opaque = name == OPAQUE  # the directory stays, its lower contents go
                    gone = parent if opaque else f"{parent}/{name.removeprefix(WHITEOUT)}".lstrip("/")
                    final = {
                        p: (n, s)
                        for p, (n, s) in final.items()
                        if n == number or not (p.startswith(gone + "/") or (p == gone and not opaque))
                    }
                else:
                    final[path] = (number, size)
    kept = {path for path in final if _under(path, roots)}
    installed = sum(final[path][1] for path in kept)
    leftovers = sorted(((p, s) for p, s in shipped if p not in kept), key=lambda item: -item[1])[:5]
    return AddedBytes(len(layers), compressed, added, installed, leftovers)


def _get(url: str, accept: str) -> Any:
    request = urllib.request.Request(url, headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def base_diff_ids(registry: str, reference: str, arch: str) -> list[str]:
    """The diff_ids of `reference` (`host/repository@sha256:...`, an index or a manifest) for `arch`,
    read from the plain-HTTP registry `registry` (host:port) that serves it."""
    repository, _, digest = reference.partition("/")[2].partition("@")
    base = f"http://{registry}/v2/{repository}"
    found = _get(f"{base}/manifests/{digest}", f"{INDEX_TYPES}, {MANIFEST_TYPES}")
    if "manifests" in found:
        chosen = next(m for m in found["manifests"] if m.get("platform", {}).get("architecture") == arch)
        found = _get(f"{base}/manifests/{chosen['digest']}", MANIFEST_TYPES)
    config = _get(f"{base}/blobs/{found['config']['digest']}", "*/*")
    return list(config["rootfs"]["diff_ids"])
