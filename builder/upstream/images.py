"""Images by reference, for reading and writing what lives beside them (signatures, attestations):
a repository in an OCI registry (the distribution API), or an OCI image layout on disk.

IMAGE is `REGISTRY/REPO@sha256:...`, `REGISTRY/REPO:TAG` (resolved to its digest first) or
`oci:PATH[:TAG|@sha256:...]` (an OCI image layout, as `build stack` writes without `--push`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from builder.errors import CheckFailed, HttpError, UpstreamUnavailable, UsageError
from builder.fsutil import write_atomic, write_atomic_bytes
from builder.rules.mirrors import plain_http
from builder.upstream.http import HttpClient, Response
from builder.upstream.registry import bearer_token

MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
ACCEPT = ", ".join(MANIFEST_TYPES)
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_REPOSITORY = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*")
FORMS = "REGISTRY/REPO@sha256:<hex>, REGISTRY/REPO:TAG or oci:PATH[:TAG|@sha256:<hex>]"
REF_NAME = "org.opencontainers.image.ref.name"


@dataclass(frozen=True)
class ImageRef:
    """A parsed IMAGE argument: a registry image (by digest or tag) or an image in an OCI layout."""

    text: str  # as the user wrote it
    registry: str | None = None  # host[:port]
    repository: str | None = None  # the path below the registry
    tag: str | None = None
    digest: str | None = None
    layout: Path | None = None
    insecure: bool = False  # plain HTTP to a registry that is not on loopback (an http:// --registry)

    @property
    def kind(self) -> Literal["registry", "oci"]:
        return "oci" if self.layout is not None else "registry"

    @property
    def plain_http(self) -> bool:
        return self.registry is not None and (self.insecure or plain_http(self.registry))

    @property
    def name(self) -> str:
        """What a signature payload calls the image: registry/repository, or the layout's path."""
        return f"{self.registry}/{self.repository}" if self.registry else f"oci:{self.layout}"

    def at(self, digest: str) -> str:
        return f"{self.name}@{digest}"


def parse_image(text: str) -> ImageRef:
    """IMAGE as the command line gives it; anything else is a usage error naming the forms."""
    if text.startswith("oci:"):
        rest = text.removeprefix("oci:")
        path, at, digest = rest.partition("@")
        if at:
            if not path or not DIGEST.match(digest):
                raise UsageError(
                    f"IMAGE '{text}': '{digest}' is not a sha256:<64 hex> digest", hint=f"IMAGE is {FORMS}"
                )
            return ImageRef(text, digest=digest, layout=Path(path))
        directory, sep, label = rest.rpartition(":")
        if sep and directory and _TAG.fullmatch(label):
            return ImageRef(text, tag=label, layout=Path(directory))
        if not rest:
            raise UsageError(f"IMAGE '{text}' names no directory", hint=f"IMAGE is {FORMS}")
        return ImageRef(text, layout=Path(rest))
    name, at, digest = text.partition("@")
    if at and not DIGEST.match(digest):
        raise UsageError(f"IMAGE '{text}': '{digest}' is not a sha256:<64 hex> digest", hint=f"IMAGE is {FORMS}")
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
        raise UsageError(
            f"IMAGE '{text}' is not an image reference",
            hint=f"IMAGE is {FORMS}, e.g. registry.lan:5000/team/maie@sha256:<digest>",
        )
    return ImageRef(text, registry, repository, tag, digest or None)


class Store(Protocol):
    """Where an image's manifests and blobs are read and written."""

    def manifest(self, reference: str) -> tuple[bytes, str] | None: ...

    def blob(self, digest: str) -> bytes: ...

    def blob_into(self, digest: str, sink: Callable[[bytes], object]) -> None: ...

    def put_blob(self, data: bytes) -> str: ...

    def put_manifest(self, reference: str, data: bytes, media_type: str) -> str: ...


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class RegistryStore:
    """One repository of an OCI registry. Anonymous bearer tokens, or the user's docker login (basic
    credentials from ~/.docker/config.json, exchanged for a token where the registry asks for one)."""

    def __init__(self, http: HttpClient, registry: str, repository: str, *, plain: bool = False) -> None:
        self.http, self.registry, self.repository = http, registry, repository
        self.base = f"{'http' if plain or plain_http(registry) else 'https'}://{registry}/v2/{repository}"
        self.credential = docker_login(registry)
        self._token: dict[str, str] = {}

    def _send(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None = None, push: bool = False
    ) -> Response:
        scope = "pull,push" if push else "pull"
        response = self.http.request(method, url, {**headers, **self._auth(scope)}, body)
        if response.status == 401 and "www-authenticate" in response.headers:
            self._token[scope] = self._exchange(response.headers["www-authenticate"], url, scope)
            response = self.http.request(method, url, {**headers, **self._auth(scope)}, body)
        if response.status in (401, 403):
            raise UpstreamUnavailable(
                f"{url}: the registry refused access (HTTP {response.status})",
                hint=f"log in to {self.registry} (docker login) or check the repository's permissions",
            )
        return response

    def _auth(self, scope: str) -> dict[str, str]:
        if scope in self._token:
            return {"Authorization": f"Bearer {self._token[scope]}"}
        if self.credential is not None:
            return {"Authorization": "Basic " + base64.b64encode(":".join(self.credential).encode()).decode()}
        return {}

    def _exchange(self, header: str, url: str, scope: str) -> str:
        challenge = dict(re.findall(r'(\w+)="([^"]*)"', header))
        if not header.lower().startswith("bearer") or "realm" not in challenge:
            raise UpstreamUnavailable(f"{url}: the registry asks for '{header.split(' ')[0]}' authentication")
        query = f"service={challenge.get('service', '')}&scope=repository:{self.repository}:{scope}"
        token_url = f"{challenge['realm']}?{query}"
        basic = self._auth("basic") if self.credential is not None else {}
        return bearer_token(self.http, token_url, basic)

    def manifest(self, reference: str) -> tuple[bytes, str] | None:
        url = f"{self.base}/manifests/{reference}"
        response = self._send("GET", url, {"Accept": ACCEPT})
        if response.status == 404:
            return None
        if response.status >= 400:
            raise HttpError(url, f"HTTP {response.status}", response.status)
        if reference.startswith("sha256:") and _digest(response.body) != reference:
            raise CheckFailed(f"{url}: the registry served a manifest whose digest is {_digest(response.body)}")
        return response.body, response.content_type

    def blob(self, digest: str) -> bytes:
        url = f"{self.base}/blobs/{digest}"
        response = self._send("GET", url, {})
        if response.status >= 400:
            raise HttpError(url, f"HTTP {response.status}", response.status)
        if _digest(response.body) != digest:
            raise CheckFailed(f"{url}: the blob's content does not match its digest")
        return response.body

    def blob_into(self, digest: str, sink: Callable[[bytes], object]) -> None:
        """A (large) blob chunk by chunk into `sink`, checked against its digest at the end."""
        url = f"{self.base}/blobs/{digest}"
        head = self._send("HEAD", url, {})  # settles the token, so the streamed GET is authorized
        if head.status >= 400:
            raise HttpError(url, f"HTTP {head.status}", head.status)
        hashed = hashlib.sha256()

        def both(chunk: bytes) -> None:
            hashed.update(chunk)
            sink(chunk)

        self.http.stream(url, self._auth("pull"), both)
        if "sha256:" + hashed.hexdigest() != digest:
            raise CheckFailed(f"{url}: the blob's content does not match its digest")

    def put_blob(self, data: bytes) -> str:
        digest = _digest(data)
        if self._send("HEAD", f"{self.base}/blobs/{digest}", {}, push=True).status == 200:
            return digest
        started = self._send("POST", f"{self.base}/blobs/uploads/", {}, b"", push=True)
        location = started.headers.get("location")
        if started.status != 202 or not location:
            raise HttpError(f"{self.base}/blobs/uploads/", f"upload refused (HTTP {started.status})", started.status)
        if location.startswith("/"):
            location = self.base.split("/v2/", 1)[0] + location
        separator = "&" if "?" in location else "?"
        done = self._send(
            "PUT",
            f"{location}{separator}digest={digest}",
            {"Content-Type": "application/octet-stream"},
            data,
            push=True,
        )
        if done.status not in (201, 204):
            raise HttpError(location, f"upload not accepted (HTTP {done.status})", done.status)
        return digest

    def put_manifest(self, reference: str, data: bytes, media_type: str) -> str:
        url = f"{self.base}/manifests/{reference}"
        response = self._send("PUT", url, {"Content-Type": media_type}, data, push=True)
        if response.status not in (201, 204):
            raise HttpError(
                url, f"manifest not accepted (HTTP {response.status}): {response.text()[:200]}", response.status
            )
        return _digest(data)


def docker_login(registry: str) -> tuple[str, str] | None:
    """The user's `docker login` for a registry (an `auth` entry of ~/.docker/config.json), if any."""
    config = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"
    try:
        auths = json.loads(config.read_text()).get("auths", {})
        entry = auths.get(registry) or auths.get(f"https://{registry}") or auths.get(f"http://{registry}")
        user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return (user, password) if user else None


class LayoutStore:
    """An OCI image layout on disk (`oci-layout`, `index.json`, `blobs/sha256/`): tags are
    `org.opencontainers.image.ref.name` annotations of the index's entries."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not (path / "index.json").is_file():
            raise UsageError(f"oci:{path} is not an OCI image layout (no index.json)")

    def _index(self) -> dict[str, object]:
        try:
            data = json.loads((self.path / "index.json").read_text())
        except ValueError as error:
            raise CheckFailed(f"{self.path / 'index.json'} is corrupt: {error}") from None
        if not isinstance(data, dict):
            raise CheckFailed(f"{self.path / 'index.json'} is not an image index")
        return data

    def _entries(self) -> list[dict[str, object]]:
        manifests = self._index().get("manifests", [])
        return [m for m in manifests if isinstance(m, dict)] if isinstance(manifests, list) else []

    def manifests_by_name(self) -> list[tuple[str, str]]:
        """(tag, digest) of every image the layout's index lists; the tag is "" where it has none."""
        return [(_ref_name(entry), str(entry.get("digest"))) for entry in self._entries()]

    def manifest(self, reference: str) -> tuple[bytes, str] | None:
        digest = reference
        if not DIGEST.match(reference):
            entry = next((e for e in self._entries() if _ref_name(e) == reference), None)
            if entry is None:
                return None
            digest = str(entry["digest"])
        path = self.path / "blobs" / "sha256" / digest.removeprefix("sha256:")
        if not path.is_file():
            return None
        data = path.read_bytes()
        if _digest(data) != digest:
            raise CheckFailed(f"{path}: its content does not match its digest")
        media_type = json.loads(data).get("mediaType") or MANIFEST_TYPES[0]
        return data, str(media_type)

    def blob(self, digest: str) -> bytes:
        chunks: list[bytes] = []
        self.blob_into(digest, chunks.append)
        return b"".join(chunks)

    def blob_into(self, digest: str, sink: Callable[[bytes], object]) -> None:
        path = self.path / "blobs" / "sha256" / digest.removeprefix("sha256:")
        hashed = hashlib.sha256()
        try:
            with path.open("rb") as blob:
                while chunk := blob.read(1 << 20):
                    hashed.update(chunk)
                    sink(chunk)
        except FileNotFoundError:
            raise CheckFailed(f"oci:{self.path} has no blob {digest}") from None
        if "sha256:" + hashed.hexdigest() != digest:
            raise CheckFailed(f"{path}: its content does not match its digest")

    def put_blob(self, data: bytes) -> str:
        digest = _digest(data)
        path = self.path / "blobs" / "sha256" / digest.removeprefix("sha256:")
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic_bytes(path, data)
        return digest

    def put_manifest(self, reference: str, data: bytes, media_type: str) -> str:
        """Store a manifest; a tag becomes its entry's ref name. A cosign `.sig`/`.att` tag also gets
        the `kind` annotation `cosign save` writes, and so does the entry of the image it signs, so
        that `cosign verify --local-image` finds both."""
        digest = self.put_blob(data)
        index = self._index()
        kept = [e for e in self._entries() if DIGEST.match(reference) or _ref_name(e) != reference]
        entry: dict[str, object] = {"mediaType": media_type, "digest": digest, "size": len(data)}
        if not DIGEST.match(reference):
            entry["annotations"] = layout_annotations(reference)
        if entry not in kept:
            kept.append(entry)
        signed = re.fullmatch(r"sha256-([0-9a-f]{64})\.(sig|att)", reference)
        if signed:
            kept = [_kind_image(e) if e.get("digest") == f"sha256:{signed[1]}" else e for e in kept]
        index["manifests"] = kept
        write_atomic(self.path / "index.json", json.dumps(index, indent=2) + "\n")
        return digest


COSIGN_KIND = "kind"  # the annotation `cosign save` marks each entry of its layout with
KINDS = {
    "image": "dev.cosignproject.cosign/image",
    "sig": "dev.cosignproject.cosign/sigs",
    "att": "dev.cosignproject.cosign/atts",
}


def layout_annotations(tag: str) -> dict[str, str]:
    """An index entry's annotations for `tag`: its ref name, and for a cosign attachment its kind."""
    suffix = tag.rpartition(".")[2] if is_attachment(tag) else ""
    return {REF_NAME: tag, **({COSIGN_KIND: KINDS[suffix]} if suffix in ("sig", "att") else {})}


def _kind_image(entry: dict[str, object]) -> dict[str, object]:
    annotations = entry.get("annotations")
    annotations = dict(annotations) if isinstance(annotations, dict) else {}
    return {**entry, "annotations": {**annotations, COSIGN_KIND: KINDS["image"]}}


def _ref_name(entry: dict[str, object]) -> str:
    annotations = entry.get("annotations")
    return str(annotations.get(REF_NAME, "")) if isinstance(annotations, dict) else ""


def open_store(ref: ImageRef, http: HttpClient) -> Store:
    if ref.layout is not None:
        return LayoutStore(ref.layout)
    return RegistryStore(http, str(ref.registry), str(ref.repository), plain=ref.plain_http)


@dataclass(frozen=True)
class Resolved:
    ref: ImageRef
    store: Store
    digest: str
    manifest: bytes
    media_type: str


def resolve(ref: ImageRef, http: HttpClient) -> Resolved:
    """The image's manifest digest (a tag is resolved first); a missing image is a failed check."""
    store = open_store(ref, http)
    if ref.digest:
        reference = ref.digest
    elif ref.tag:
        reference = ref.tag
    else:  # an OCI layout with one image
        entries = (
            [e for e in LayoutStore(ref.layout).manifests_by_name() if not is_attachment(e[0])] if ref.layout else []
        )
        if len(entries) != 1:
            raise UsageError(
                f"{ref.text} holds {len(entries)} images; name one with oci:PATH:TAG or oci:PATH@sha256:..."
            )
        reference = entries[0][1]
    found = store.manifest(reference)
    if found is None:
        raise CheckFailed(f"{ref.text}: no such image")
    manifest, media_type = found
    return Resolved(ref, store, _digest(manifest), manifest, media_type)


def is_attachment(name: str) -> bool:
    """A cosign tag (`sha256-<hex>.sig`, `.att`) or a referrers-fallback tag (`sha256-<hex>`)."""
    return bool(re.fullmatch(r"sha256-[0-9a-f]{64}(\.(sig|att))?", name))
