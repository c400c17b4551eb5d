"""Re-using syft's catalogue of an image when only its app stage changed.

syft catalogues an image's squashed filesystem, and most of a rebuild is the same filesystem: an
app-only change gives a new digest over the very same layers below the app stage. After each
full scan `build stack` keeps a *record*: the diff IDs of the layers below the app stage, every
path they hold, and syft's SPDX and CycloneDX documents. A later image can use that record instead
of a rescan when all of these hold, else it is scanned in full and the reason is said:

- its layers below the app stage are the recorded ones (by diff ID, in order);
- its app-stage layers hold exactly the stack's app files (the bytes rendered into the build
  context, each at its path) and their parent directories: nothing else, nothing deleted;
- none of those paths is in the layers below (nothing is replaced or hidden), and the recorded
  scan found nothing in its own image's app layers (every package and file it lists lies below);
- syft, run on the app files alone with the image catalogers, finds no package in them (this scan
  runs while the engine builds, and is cached by the files' content).

Then syft would find in the new image what it found in the recorded one; only the image's own
facts differ (manifest digest, config digest, labels), and they are set from the new image. The
end-to-end tests compare such SBOMs with a full scan's, byte for byte.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import posixpath
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

from builder import __version__
from builder.errors import BuilderError
from builder.fsutil import default_cache_dir, write_atomic_bytes
from builder.sbom.syft import Scan, run_syft, syft_argv, syft_env

if TYPE_CHECKING:
    from builder.upstream.images import Store

RECORD_FORMAT = "1"
GZIP_LAYERS = {
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
}
PLAIN_LAYERS = {"application/vnd.oci.image.layer.v1.tar", "application/vnd.docker.image.rootfs.diff.tar"}
LABEL_PROPERTY = "syft:image:labels:"
APP_LAYER_SLACK = 1 << 20  # bytes a compressed app layer may hold beyond its files (tar headers, gzip)


class NotReusable(Exception):
    """Why a full scan is needed (said in the progress line)."""


@dataclass(frozen=True)
class AppStage:
    """What the app stage adds: file bytes by absolute path, and the directories it may create."""

    files: Mapping[str, bytes]
    workdir: str | None = None

    def sums(self) -> dict[str, str]:
        return {path: hashlib.sha256(data).hexdigest() for path, data in self.files.items()}

    def directories(self) -> set[str]:
        found = {"/"}
        for path in [*self.files, *([self.workdir] if self.workdir else [])]:
            parent = path if path == self.workdir else posixpath.dirname(path)
            while parent not in found:
                found.add(parent)
                parent = posixpath.dirname(parent)
        return found

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(sorted(self.sums().items())).encode()).hexdigest()


@dataclass(frozen=True)
class Image:
    """The facts of a built image that the record is matched and rebound with."""

    digest: str
    config_digest: str
    config: dict[str, Any]
    layers: list[dict[str, Any]]  # the manifest's layer descriptors

    @property
    def diff_ids(self) -> list[str]:
        return [str(d) for d in self.config.get("rootfs", {}).get("diff_ids", [])]

    @property
    def labels(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in (self.config.get("config", {}).get("Labels") or {}).items()}


def read_image(store: Store, digest: str) -> Image:
    found = store.manifest(digest)
    if found is None:
        raise NotReusable(f"the image {digest} is not where it was pushed")
    try:
        manifest = json.loads(found[0])
        config_digest = str(manifest.get("config", {}).get("digest", ""))
        config = json.loads(store.blob(config_digest))
    except (ValueError, AttributeError):
        raise NotReusable(f"{digest} is not one platform's image with a JSON config") from None
    image = Image(digest, config_digest, config, [dict(layer) for layer in manifest.get("layers", [])])
    if len(image.diff_ids) != len(image.layers):
        raise NotReusable(f"{digest}: its config lists {len(image.diff_ids)} layers, its manifest {len(image.layers)}")
    return image


# ---------------------------------------------------------------- layers


@dataclass(frozen=True)
class Entry:
    path: str  # absolute, normalized
    kind: str  # file | dir | link | other | whiteout | opaque
    sha256: str | None = None  # of a file's bytes, when asked for


def layer_entries(stream: IO[bytes], media_type: str, *, hash_files: bool) -> list[Entry]:
    """What a layer's tar holds, in order; whiteouts name the path they delete."""
    if media_type not in GZIP_LAYERS | PLAIN_LAYERS:
        raise NotReusable(f"layers of type {media_type} are not read here")
    entries = []
    with tarfile.open(fileobj=stream, mode="r|gz" if media_type in GZIP_LAYERS else "r|") as tar:
        for member in tar:
            path = posixpath.normpath("/" + member.name)
            name = posixpath.basename(path)
            if name == ".wh..wh..opq":
                entries.append(Entry(posixpath.dirname(path), "opaque"))
            elif name.startswith(".wh."):
                entries.append(Entry(posixpath.join(posixpath.dirname(path), name[4:]), "whiteout"))
            elif member.isreg():
                digest = None
                if hash_files:
                    content = tar.extractfile(member)
                    digest = hashlib.sha256(content.read() if content else b"").hexdigest()
                entries.append(Entry(path, "file", digest))
            elif member.isdir():
                entries.append(Entry(path, "dir"))
            else:
                entries.append(Entry(path, "link" if member.issym() or member.islnk() else "other"))
    return entries


def read_layer(store: Store, layer: dict[str, Any], *, hash_files: bool) -> list[Entry]:
    with tempfile.TemporaryFile() as spool:
        store.blob_into(str(layer["digest"]), spool.write)
        spool.seek(0)
        try:
            return layer_entries(spool, str(layer.get("mediaType", "")), hash_files=hash_files)
        except (tarfile.TarError, OSError, EOFError) as error:
            raise NotReusable(f"layer {layer['digest']} is not a readable tar ({error})") from None


def is_app_layer(entries: list[Entry], sums: Mapping[str, str], directories: set[str]) -> bool:
    """Whether a layer holds nothing but app files (with their exact bytes) and their directories."""
    for entry in entries:
        if entry.kind == "file" and sums.get(entry.path) == entry.sha256:
            continue
        if entry.kind == "dir" and entry.path in directories:
            continue
        return False
    return True


def app_layer_count(top_down: Iterator[list[Entry]], app: AppStage) -> int:
    """How many of the image's top layers are its app stage's: the fewest, from the top, that
    together hold every app file, each holding nothing else."""
    sums, directories = app.sums(), app.directories()
    seen: set[str] = set()
    count = 0
    for count, entries in enumerate(top_down, 1):
        if not is_app_layer(entries, sums, directories):
            raise NotReusable(f"layer {count} from the top holds more than the app files")
        seen.update(e.path for e in entries if e.kind == "file")
        if seen == set(sums):
            return count
    raise NotReusable(f"the top {count} layers do not hold every app file")


def apply_layer(paths: dict[str, str], entries: list[Entry]) -> None:
    """The squashed view of `paths` (path -> kind) after a layer on top: its deletions apply to
    the layers below it, wherever they sit in its tar, then its own entries are added."""
    for entry in entries:
        if entry.kind in ("whiteout", "opaque"):
            prefix = entry.path.rstrip("/") + "/"
            for path in [p for p in paths if p.startswith(prefix)]:
                del paths[path]
            if entry.kind == "whiteout":
                paths.pop(entry.path, None)
    paths.update((entry.path, entry.kind) for entry in entries if entry.kind not in ("whiteout", "opaque"))


def collisions(app: AppStage, lower: Mapping[str, str]) -> list[str]:
    """App paths that the layers below already hold, and their directories that are not directories there."""
    clashes = [path for path in app.files if path in lower]
    clashes += [path for path in app.directories() if lower.get(path, "dir") != "dir"]
    return sorted(clashes)


# ---------------------------------------------------------------- records


@dataclass(frozen=True)
class Record:
    lower: list[str]  # diff IDs below the app stage
    paths: dict[str, str]  # every path those layers hold -> kind
    digest: str  # the image scanned
    config_digest: str
    spdx: dict[str, Any]  # syft's documents, as syft wrote them
    cyclonedx: dict[str, Any]


def record_key(lower: list[str], syft_config: bytes) -> str:
    parts = {"format": RECORD_FORMAT, "builder": __version__, "syft-config": hashlib.sha256(syft_config).hexdigest()}
    return hashlib.sha256(json.dumps({**parts, "lower": lower}, sort_keys=True).encode()).hexdigest()


def records_dir(cache_dir: Path | None = None) -> Path:
    return (cache_dir or default_cache_dir()) / "sbom-scans"


def save_record(record: Record, syft_config: bytes, cache_dir: Path | None = None) -> Path:
    path = records_dir(cache_dir) / f"{record_key(record.lower, syft_config)}.json.gz"
    data = orjson.dumps(record.__dict__)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic_bytes(path, gzip.compress(data, compresslevel=1, mtime=0))
    return path


def load_record(lower: list[str], syft_config: bytes, cache_dir: Path | None = None) -> Record | None:
    """The record for these lower layers; None when there is none or it cannot be read (a miss)."""
    path = records_dir(cache_dir) / f"{record_key(lower, syft_config)}.json.gz"
    try:
        data = orjson.loads(gzip.decompress(path.read_bytes()))
        record = Record(**data)
    except (OSError, ValueError, TypeError, EOFError):
        return None
    return record if record.lower == lower else None


def evidence_layers(syft_json: dict[str, Any]) -> set[str]:
    """Every layer a package or file that syft reports was found in."""
    layers = set()
    for package in syft_json.get("artifacts") or []:
        for location in package.get("locations") or []:
            layers.add(str(location.get("layerID", "")))
    for item in syft_json.get("files") or []:
        layers.add(str((item.get("location") or {}).get("layerID", "")))
    return layers


def make_record(image: Image, app_layers: int, lower: dict[str, str], scan: Scan, app: AppStage) -> Record:
    """The record of a full scan of `image`, or NotReusable when that scan found something in (or
    hidden by) the app stage's layers."""
    below = image.diff_ids[: len(image.diff_ids) - app_layers]
    outside = evidence_layers(scan.syft) - set(below)
    if outside:
        raise NotReusable(f"syft found packages or files in the app stage's layers ({', '.join(sorted(outside))})")
    clashes = collisions(app, lower)
    if clashes:
        raise NotReusable(f"the app stage replaces {clashes[0]} of the layers below")
    return Record(below, lower, image.digest, image.config_digest, scan.spdx, scan.cyclonedx)


def rebind(record: Record, image: Image) -> Scan:
    """The recorded scan's documents as syft writes them for `image`: its manifest and config
    digests in place of the recorded ones, its labels as the image properties."""

    def swap(document: dict[str, Any]) -> dict[str, Any]:
        text = orjson.dumps(document)
        for old, new in ((record.digest, image.digest), (record.config_digest, image.config_digest)):
            text = text.replace(old.removeprefix("sha256:").encode(), new.removeprefix("sha256:").encode())
        return dict(orjson.loads(text))

    spdx, cyclonedx = swap(record.spdx), swap(record.cyclonedx)
    metadata = cyclonedx.get("metadata") or {}
    if "properties" in metadata or image.labels:
        kept = [p for p in metadata.get("properties", []) if not str(p.get("name", "")).startswith(LABEL_PROPERTY)]
        labels = [{"name": LABEL_PROPERTY + key, "value": value} for key, value in sorted(image.labels.items())]
        metadata["properties"] = kept + labels
    config = base64.b64encode(json.dumps(image.config).encode()).decode()
    metadata = {"manifestDigest": image.digest, "imageID": image.config_digest, "config": config}
    return Scan(spdx, cyclonedx, {"source": {"type": "image", "metadata": metadata}})


# ---------------------------------------------------------------- syft on the app files alone


def app_packages(app: AppStage, binary: str, config: bytes, environ: Mapping[str, str] | None = None) -> int:
    """How many packages syft's image catalogers find in the app files alone (cached by content)."""
    key = hashlib.sha256(f"{app.digest()}\0{__version__}\0".encode() + config).hexdigest()
    cached = records_dir() / f"app-{key}.json"
    try:
        return int(json.loads(cached.read_text())["packages"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    with tempfile.TemporaryDirectory(prefix="builder-app-scan-") as temporary:
        work = Path(temporary)
        tree = work / "tree"
        for path, data in app.files.items():
            target = tree / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        (work / "syft.yaml").write_bytes(config)
        argv = syft_argv(
            binary, f"dir:{tree}", work, name="app", version=key[:12], config=work / "syft.yaml", platform=None
        )
        argv += ["--override-default-catalogers", "image"]
        env = syft_env(os.environ if environ is None else environ, work / "cache", plain_http=False)
        scan = run_syft(argv, env, work, "the app files")
    packages = len(scan.syft.get("artifacts") or [])
    cached.parent.mkdir(parents=True, exist_ok=True)
    write_atomic_bytes(cached, json.dumps({"packages": packages}).encode())
    return packages


def reusable_scan(
    store: Store, image: Image, app: AppStage, syft_config: bytes, app_packages: Callable[[], int]
) -> tuple[Scan, Record]:
    """The recorded scan rebound to `image`, or NotReusable with the reason. `app_packages` gives
    what syft finds in the app files alone (a scan started while the engine built)."""
    count = app_layer_count(_top_down(store, image, app), app)
    lower = image.diff_ids[: len(image.diff_ids) - count]
    record = load_record(lower, syft_config)
    if record is None:
        raise NotReusable("no earlier scan of the layers below the app stage")
    clashes = collisions(app, record.paths)
    if clashes:
        raise NotReusable(f"the app stage replaces {clashes[0]} of the layers below")
    try:
        found = app_packages()
    except (BuilderError, OSError) as error:
        raise NotReusable(f"syft could not scan the app files ({error})") from None
    if found < 0:
        raise NotReusable("there was no earlier scan to re-use when the build started")
    if found:
        raise NotReusable(f"syft finds {found} package(s) in the app files")
    return rebind(record, image), record


def _top_down(store: Store, image: Image, app: AppStage) -> Iterator[list[Entry]]:
    budget = sum(len(data) for data in app.files.values()) + APP_LAYER_SLACK
    for layer in reversed(image.layers):
        if int(layer.get("size", 0)) > budget:
            raise NotReusable("a layer above the app files' size sits where the app stage's layers should be")
        yield read_layer(store, layer, hash_files=True)


def scan_record(store: Store, image: Image, app: AppStage) -> tuple[int, dict[str, str]]:
    """For the record of a full scan: how many top layers are the app stage's, and every path the
    layers below hold (read while syft scans)."""
    count = app_layer_count(_top_down(store, image, app), app)
    paths: dict[str, str] = {}
    for layer in image.layers[: len(image.layers) - count]:
        apply_layer(paths, read_layer(store, layer, hash_files=False))
    return count, paths
