"""`make_sboms`: scan an image with syft and write its SPDX and CycloneDX SBOMs, joined with its
lock, normalized and checked for completeness. The IO edge of builder.sbom."""

from __future__ import annotations

import contextlib
import gc
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.errors import SbomIncomplete, ToolFailed
from builder.fsutil import write_atomic_bytes
from builder.sbom.completeness import missing_packages
from builder.sbom.contents import LockContents
from builder.sbom.image import default_name, descriptor_tag, layout_descriptor, single_image_layout, syft_source
from builder.sbom.join import found_python_packages, image_package_count, join_cyclonedx, join_spdx
from builder.sbom.normalize import dumps, normalize_cyclonedx, normalize_spdx, sbom_time
from builder.sbom.policy import DEFAULT_SYFT_CONFIG, Site
from builder.sbom.syft import Scan, image_facts, run_syft, syft_argv, syft_binary, syft_env
from builder.upstream.images import ImageRef, parse_image

SPDX_FILE = "sbom.spdx.json"
CYCLONEDX_FILE = "sbom.cdx.json"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class SbomFile:
    format: str  # spdx-json 2.3 | cyclonedx-json 1.6
    path: Path
    digest: str  # sha256:<hex> of the file's bytes


@dataclass(frozen=True)
class SbomResult:
    image: str
    digest: str  # the manifest digest both SBOMs are bound to
    spdx: SbomFile
    cyclonedx: SbomFile
    packages: int  # what syft found in the image
    locked: int  # the locked runtime packages checked against them
    missing: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "digest": self.digest,
            "paths": {"spdx": str(self.spdx.path), "cyclonedx": str(self.cyclonedx.path)},
            "files": {
                "spdx": {"format": self.spdx.format, "digest": self.spdx.digest},
                "cyclonedx": {"format": self.cyclonedx.format, "digest": self.cyclonedx.digest},
            },
            "packages": self.packages,
            "locked": self.locked,
            "missing": list(self.missing),
        }


@dataclass(frozen=True)
class Sboms:
    """Both documents, ready to write, and what was found."""

    digest: str
    spdx: str
    cyclonedx: str
    packages: int
    locked: int


def assemble(
    scan: Scan,
    contents: LockContents | None,
    site: Site,
    *,
    what: str,
    name: str,
    expected_digest: str | None = None,
    source_date_epoch: int | None = None,
) -> Sboms:
    """From syft's documents to builder's: bind to the digest, join with the lock, check
    completeness, normalize. Pure: the same scan and lock give the same text."""
    facts = image_facts(scan.syft, what)
    if expected_digest is not None and facts.manifest_digest != expected_digest:
        raise ToolFailed(f"syft scanned {what} but reports manifest {facts.manifest_digest}, not {expected_digest}")
    try:
        found = found_python_packages(scan.spdx)
        packages = image_package_count(scan.spdx)
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ToolFailed(f"syft scanned {what} but its SPDX document is not what syft writes ({error})") from None
    if contents is not None:
        missing = missing_packages(found, contents, site.policy.allow_missing)
        if missing:
            raise SbomIncomplete(what, f"{contents.stack} on {contents.target}", missing)
    created = sbom_time(source_date_epoch, facts.created)
    organization = site.policy.organization
    spdx = join_spdx(scan.spdx, contents, facts, created=created, name=name, organization=organization)
    cyclonedx = join_cyclonedx(scan.cyclonedx, contents, facts, name=name, organization=organization)
    digest = facts.manifest_digest
    spdx = normalize_spdx(spdx, digest=digest, created=created, namespace=site.policy.spdx_namespace)
    cyclonedx = normalize_cyclonedx(cyclonedx, digest=digest, created=created)
    locked = len(contents.runtime()) if contents is not None else 0
    return Sboms(digest, dumps(spdx), dumps(cyclonedx), packages, locked)


def syft_config_bytes(site: Site) -> bytes:
    """The syft configuration scans run with: the site's file, else builder's default."""
    return site.syft_config.read_bytes() if site.syft_config is not None else DEFAULT_SYFT_CONFIG.encode()


def scan_image(
    ref: ImageRef,
    *,
    site: Site,
    name: str,
    platform: str | None = None,
    environ: Mapping[str, str] | None = None,
    progress: Progress | None = None,
) -> tuple[Scan, str | None]:
    """syft's documents for `ref`, and the manifest digest they must be bound to (known for a
    layout; a registry digest may name a multi-platform index)."""
    say = progress or (lambda _: None)
    with tempfile.TemporaryDirectory(prefix="builder-sbom-") as temporary:
        work = Path(temporary)
        expected, layout = ref.digest, None
        if ref.kind == "oci":
            chosen = single_image_layout(ref, work / "layout")
            expected, layout = chosen.digest, chosen.layout
        config = work / "syft.yaml"
        config.write_bytes(syft_config_bytes(site))
        # Registry scans pick the lock's platform from a multi-platform image; a layout holds one image.
        version = expected or ref.tag or "unknown"
        argv = syft_argv(
            syft_binary(), syft_source(ref, layout), work, name=name, version=version, config=config,
            platform=platform if ref.kind == "registry" else None,
        )  # fmt: skip
        env = syft_env(os.environ if environ is None else environ, work / "cache", plain_http=ref.plain_http)
        say(f"scanning {ref.text} with syft")
        return run_syft(argv, env, work, ref.text), expected if ref.kind == "oci" else None


def scan_name(ref: ImageRef, contents: LockContents | None) -> str:
    """The source name in the SBOM: the stack, else the repository or the layout's tag."""
    if contents is not None:
        return contents.stack
    layout_tag = descriptor_tag(layout_descriptor(ref)) if ref.kind == "oci" and ref.tag is None else None
    return default_name(ref, layout_tag)


def write_sboms(
    scan: Scan,
    ref: ImageRef,
    out_dir: Path,
    *,
    contents: LockContents | None,
    site: Site,
    name: str,
    expected_digest: str | None = None,
    source_date_epoch: int | None = None,
) -> SbomResult:
    """Both SBOMs from syft's documents (see `assemble`), written atomically into `out_dir`."""
    sboms = assemble(
        scan, contents, site, what=ref.text, name=name, source_date_epoch=source_date_epoch,
        expected_digest=expected_digest,
    )  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for file_name, text, fmt in (
        (SPDX_FILE, sboms.spdx, "spdx-json 2.3"),
        (CYCLONEDX_FILE, sboms.cyclonedx, "cyclonedx-json 1.6"),
    ):
        path = out_dir / file_name
        write_atomic_bytes(path, text.encode(), mode=0o644)  # an SBOM is for anyone who can see the image
        files.append(SbomFile(fmt, path, "sha256:" + hashlib.sha256(text.encode()).hexdigest()))
    return SbomResult(ref.text, sboms.digest, files[0], files[1], sboms.packages, sboms.locked)


def make_sboms(
    image: str | ImageRef,
    out_dir: Path,
    *,
    contents: LockContents | None = None,
    site: Site | None = None,
    name: str | None = None,
    source_date_epoch: int | None = None,
    environ: Mapping[str, str] | None = None,
    progress: Progress | None = None,
) -> SbomResult:
    """Scan `image` with syft and write `out_dir/sbom.spdx.json` (SPDX 2.3) and
    `out_dir/sbom.cdx.json` (CycloneDX 1.6), joined with `contents` (a lock's view, from
    `builder.sbom.contents.lock_contents`) when given. Nothing is written when the scan fails
    (exit 3) or a locked package is missing from the image (exit 1). `name` is the source name in
    the SBOM (default: the stack, else the repository or layout tag)."""
    ref = parse_image(image) if isinstance(image, str) else image
    site = site or Site.default()
    name = name or scan_name(ref, contents)
    platform = contents.platform if contents is not None else None
    with without_gc():
        scan, expected = scan_image(ref, site=site, name=name, platform=platform, environ=environ, progress=progress)
        return write_sboms(
            scan, ref, out_dir, contents=contents, site=site, name=name, expected_digest=expected,
            source_date_epoch=source_date_epoch,
        )  # fmt: skip


@contextlib.contextmanager
def without_gc() -> Iterator[None]:
    """Python's cycle collector paused while SBOMs are read, joined and written: those documents
    are millions of small objects with no cycles (reference counting frees them), and the
    collections their allocation sets off took longer than the work itself."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
