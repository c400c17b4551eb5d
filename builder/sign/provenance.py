"""SLSA v1 provenance for an image `build stack` made: what went in (every catalogue input, the
locks, base images with digests, source commits, locked wheels), how (builder, engine, times) and
what else came out (the wheels its source builds made, as byproducts)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from builder import __version__
from builder.lock.model import Lock, sha256_text

BUILD_TYPE = "https://builder.invalid/build-types/stack/v1"  # an identifier, as SLSA asks for a URI


def provenance(lock: Lock, result: Mapping[str, Any]) -> dict[str, Any]:
    """The predicate of an `https://slsa.dev/provenance/v1` statement for the image in `result`."""
    image = lock.image
    dependencies: list[dict[str, Any]] = [
        {"uri": f"catalogue:{path}", "digest": {"sha256": digest.removeprefix("sha256:")}}
        for path, digest in sorted(image.inputs.files.items())
    ]
    dependencies.append({"uri": "lock:pylock.toml", "digest": {"sha256": image.pylock_sha256}})
    dependencies += [
        {"uri": f"lock:pylock.build-{recipe}.toml", "digest": {"sha256": sha}}
        for recipe, sha in sorted(image.build_pylocks.items())
    ]
    for role in ("devel", "runtime"):
        base = getattr(image.base_images, role)
        dependencies.append(
            {
                "name": f"base-{role}",
                "uri": f"oci://{base.pinned}",
                "digest": {"sha256": base.digest.removeprefix("sha256:")},
            }
        )
    for decision in image.packages:
        if decision.kind == "source":
            dependencies.append(
                {
                    "name": decision.recipe,
                    "uri": f"git+{decision.source}@{decision.ref}",
                    "digest": {"gitCommit": decision.commit},
                }
            )
        elif decision.kind == "wheel" and decision.url and decision.sha256:
            dependencies.append({"name": decision.recipe, "uri": decision.url, "digest": {"sha256": decision.sha256}})
    return {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {"stack": image.stack, "target": image.target, "platform": result.get("platform")},
            "internalParameters": {
                "lockChecksum": image.inputs.checksum,
                "imageLockChecksum": image.checksum,
                "engine": result.get("engine"),
                "wheelCache": {name: entry.get("key") for name, entry in (result.get("wheel_cache") or {}).items()},
            },
            "resolvedDependencies": dependencies,
        },
        "runDetails": {
            "builder": {"id": f"builder {__version__}", "version": {"builder": __version__}},
            "metadata": {
                "invocationId": sha256_text(f"{result.get('started')}{image.checksum}")[:32],
                "startedOn": result.get("started"),
                "finishedOn": result.get("finished"),
            },
            "byproducts": built_wheels(result),
        },
    }


def built_wheels(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The wheels the build's source stages made (or took from the wheel cache), with their sha256:
    what an air-gapped bundle's built wheels are checked against."""
    return [
        {"name": name, "uri": f"wheel:{recipe}/{name}", "digest": {"sha256": sha}}
        for recipe, entry in sorted((result.get("wheel_cache") or {}).items())
        for name, sha in sorted((entry.get("sha256") or {}).items())
    ]
