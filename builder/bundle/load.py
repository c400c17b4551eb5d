"""`build bundle import`: a bundle's image, signatures and attestations pushed into a site's registry
byte for byte (so every digest, and every signature over one, holds there), and its wheels uploaded
to a site's index. Nothing is pushed unless every member matches the bundle's manifest."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from builder.bundle.check import file_check
from builder.bundle.copy import copy_manifest
from builder.bundle.layout import LAYOUT, WHEELS
from builder.bundle.tarball import unpack
from builder.errors import CheckFailed, UsageError
from builder.upstream.http import HttpClient
from builder.upstream.images import LayoutStore, RegistryStore

Progress = Callable[[str], None]


def import_bundle(
    bundle: Path, repository: str, wheels_index: str | None, http: HttpClient, progress: Progress
) -> dict[str, Any]:
    """Push the bundle's image (by its tag in the bundle), `.sig` and `.att` to REGISTRY/REPO;
    upload its wheels to `wheels_index` when given."""
    if not bundle.is_file():
        raise UsageError(f"{bundle}: no such file")
    plain = repository.startswith("http://")
    registry, _, path = repository.removeprefix("http://").partition("/")
    with tempfile.TemporaryDirectory(prefix="builder-bundle-") as scratch:
        unpacked = unpack(bundle, Path(scratch))
        files, manifest = file_check(unpacked)
        if not files.ok or manifest is None:
            raise CheckFailed(f"{bundle}: {files.detail.replace(f'{scratch}/', '')}", hint="nothing was pushed")
        layout = LayoutStore(unpacked.path(LAYOUT))
        store = RegistryStore(http, registry, path, plain=plain)
        tags = []
        for tag, digest in layout.manifests_by_name():
            progress(f"pushing {tag} ({digest}) to {registry}/{path}")
            copy_manifest(layout, store, digest, tag or digest, f"{bundle}: {tag or digest}")
            tags.append(tag)
        wheels = [unpacked.path(name) for name in sorted(unpacked.members) if name.startswith(f"{WHEELS}/")]
        if wheels_index:
            from builder.build.wheelcache import publish

            progress(f"uploading {len(wheels)} wheel(s) to {wheels_index}")
            publish(http, tuple(wheels), wheels_index)
        return {
            "image": f"{registry}/{path}@{manifest.digest}",
            "digest": manifest.digest,
            "tags": tags,
            "wheels": [wheel.name for wheel in wheels],
            "wheels-index": wheels_index,
        }
