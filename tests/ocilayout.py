"""Small OCI image layouts made in pure Python: a layer with /etc/os-release, a dpkg status file and
Python packages' dist-info (METADATA and RECORD), its config, manifest and index.json. syft reads
them as it reads an image `build stack` writes."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

REF_NAME = "org.opencontainers.image.ref.name"
SITE_PACKAGES = "usr/local/lib/python3.10/dist-packages"
OS_RELEASE = (
    'PRETTY_NAME="Ubuntu 22.04.5 LTS"\nNAME="Ubuntu"\nVERSION_ID="22.04"\nVERSION="22.04.5 LTS (Jammy Jellyfish)"\n'
    "VERSION_CODENAME=jammy\nID=ubuntu\nID_LIKE=debian\n"
)


def _blob(layout: Path, data: bytes) -> tuple[str, int]:
    digest = hashlib.sha256(data).hexdigest()
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    (blobs / digest).write_bytes(data)
    return f"sha256:{digest}", len(data)


def layer(files: dict[str, str]) -> bytes:
    """An uncompressed layer tar of `files` (path -> text), with its directories, every time 0."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        directories: set[str] = set()
        for path in sorted(files):
            parts = path.split("/")[:-1]
            for depth in range(1, len(parts) + 1):
                directory = "/".join(parts[:depth])
                if directory not in directories:
                    directories.add(directory)
                    info = tarfile.TarInfo(directory)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
                    tar.addfile(info)
            data = files[path].encode()
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def python_package(name: str, version: str) -> dict[str, str]:
    """The files pip leaves for an installed wheel (enough for syft's python cataloger)."""
    info = f"{SITE_PACKAGES}/{name.replace('-', '_')}-{version}.dist-info"
    module = name.replace("-", "_")
    return {
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/RECORD": f"{module}/__init__.py,,\n{info}/METADATA,,\n{info}/RECORD,,\n",
        f"{SITE_PACKAGES}/{module}/__init__.py": "",
    }


def dpkg_status(packages: Iterable[tuple[str, str]]) -> str:
    entries = [
        f"Package: {name}\nStatus: install ok installed\nPriority: optional\nArchitecture: arm64\n"
        f"Version: {version}\nMaintainer: Ubuntu Developers\nDescription: {name}\n"
        for name, version in packages
    ]
    return "\n".join(entries)


def image_files(python: Iterable[tuple[str, str]], debs: Iterable[tuple[str, str]] = ()) -> dict[str, str]:
    files = {"etc/os-release": OS_RELEASE}
    debs = list(debs)
    if debs:
        files["var/lib/dpkg/status"] = dpkg_status(debs)
    for name, version in python:
        files.update(python_package(name, version))
    return files


def add_image(
    layout: Path,
    files: dict[str, str],
    *,
    tag: str | None = "latest",
    created: str = "2025-01-02T03:04:05Z",
    arch: str = "arm64",
) -> str:
    """Write one image into the layout at `layout` (made if absent; its index.json gains an entry):
    its manifest digest."""
    data = layer(files)
    layer_digest, layer_size = _blob(layout, data)
    config = {
        "architecture": arch,
        "os": "linux",
        "created": created,
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [{"created": created, "created_by": "tests/ocilayout.py"}],
    }
    config_digest, config_size = _blob(layout, json.dumps(config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_size,
        },
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer_size}],
    }
    digest, size = _blob(layout, json.dumps(manifest, sort_keys=True).encode())
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    index_path = layout / "index.json"
    index: dict[str, Any] = (
        json.loads(index_path.read_text()) if index_path.is_file() else {"schemaVersion": 2, "manifests": []}
    )
    descriptor: dict[str, object] = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": digest,
        "size": size,
        "platform": {"architecture": arch, "os": "linux"},
    }
    if tag is not None:
        descriptor["annotations"] = {REF_NAME: tag}
    index["manifests"].append(descriptor)
    index_path.write_text(json.dumps(index, sort_keys=True))
    return digest
