"""`build bundle import`: a bundle's image, signatures and attestations pushed into a site's registry
byte for byte (so every digest, and every signature over one, holds there), and its wheels uploaded
to a site's index. Nothing is pushed unless every member matches the bundle's manifest."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from builder.bundle.check import file_check, verify_unpacked
from builder.bundle.copy import copy_manifest
from builder.bundle.layout import LAYOUT, WHEELS, BundleManifest
from builder.bundle.tarball import Unpacked, unpack
from builder.errors import CheckFailed, UsageError
from builder.sign.keys import PublicKey
from builder.upstream.http import HttpClient
from builder.upstream.images import LayoutStore, RegistryStore
from builder.verify import Check

Progress = Callable[[str], None]


def import_bundle(
    bundle: Path,
    repository: str,
    wheels_index: str | None,
    key: PublicKey | None,
    http: HttpClient,
    progress: Progress,
) -> dict[str, Any]:
    """Push the bundle's image (by its tag in the bundle), `.sig` and `.att` to REGISTRY/REPO;
    upload its wheels to `wheels_index` when given. With `key`, the bundle must pass every check
    of `bundle verify` first; without, its members must match its manifest."""
    if not bundle.is_file():
        raise UsageError(f"{bundle}: no such file")
    plain = repository.startswith("http://")
    registry, _, path = repository.removeprefix("http://").partition("/")
    with tempfile.TemporaryDirectory(prefix="builder-bundle-") as scratch:
        unpacked = unpack(bundle, Path(scratch))
        checks, manifest = verify_unpacked(unpacked, key) if key is not None else _files_only(unpacked)
        failed = [check.line() for check in checks if not check.ok]
        if failed or manifest is None:
            raise CheckFailed(f"{bundle} does not verify: {'; '.join(failed)}", hint="nothing was pushed")
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


def _files_only(unpacked: Unpacked) -> tuple[list[Check], BundleManifest | None]:
    files, manifest = file_check(unpacked)
    return [Check(files.name, files.ok, files.detail.replace(f"{unpacked.directory}/", ""))], manifest
