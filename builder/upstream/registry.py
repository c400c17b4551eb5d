"""Resolving image references to digests through the OCI distribution API (anonymous bearer auth)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from builder.errors import BuilderError, HttpError, UpstreamUnavailable
from builder.rules.mirrors import plain_http
from builder.upstream.http import HttpClient, Response

INDEX_TYPES = {"application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"}
MANIFEST_TYPES = {"application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json"}
ACCEPT = ", ".join(sorted(INDEX_TYPES | MANIFEST_TYPES))


@dataclass(frozen=True)
class ImageName:
    registry: str
    repository: str
    tag: str

    @classmethod
    def parse(cls, ref: str) -> ImageName:
        name, _, tag = ref.rpartition(":")
        registry, _, repository = name.partition("/")
        if (
            not name
            or "/" in tag
            or not repository
            or not ("." in registry or ":" in registry or registry == "localhost")
        ):
            raise BuilderError(f"'{ref}' is not a registry/repository:tag image reference")
        return cls(registry, repository, tag)


@dataclass(frozen=True)
class ResolvedImage:
    ref: str
    digest: str  # the manifest for the platform
    index_digest: str | None  # the multi-platform index it was picked from, if any
    platform: str


def _endpoint(registry: str, mirrors: dict[str, str]) -> str:
    target = mirrors.get(registry, registry)
    if target.startswith(("http://", "https://")):
        return target.rstrip("/")
    return f"{'http' if plain_http(target) else 'https'}://{target.rstrip('/')}"


def _challenge(header: str) -> dict[str, str]:
    return dict(re.findall(r'(\w+)="([^"]*)"', header))


class RegistryClient:
    def __init__(self, http: HttpClient, mirrors: dict[str, str] | None = None) -> None:
        self.http = http
        self.mirrors = mirrors or {}
        self._tokens: dict[str, str] = {}

    def _token(self, challenge_header: str, url: str) -> str:
        challenge = _challenge(challenge_header)
        realm = challenge.get("realm")
        if not challenge_header.lower().startswith("bearer") or not realm:
            raise UpstreamUnavailable(
                f"{url}: registry asks for '{challenge_header}', only anonymous bearer tokens are supported"
            )
        query = "&".join(f"{key}={challenge[key]}" for key in ("service", "scope") if key in challenge)
        token_url = f"{realm}?{query}" if query else realm
        return bearer_token(self.http, token_url)

    def _manifest(self, base: str, repository: str, reference: str) -> Response:
        url = f"{base}/v2/{repository}/manifests/{reference}"
        if self.http.offline:
            return self.http.get(url, accept=ACCEPT)
        headers = {"Accept": ACCEPT}
        if repository in self._tokens:
            headers["Authorization"] = f"Bearer {self._tokens[repository]}"
        response = self.http.request("GET", url, headers)
        if response.status == 401 and "www-authenticate" in response.headers:
            self._tokens[repository] = self._token(response.headers["www-authenticate"], url)
            headers["Authorization"] = f"Bearer {self._tokens[repository]}"
            response = self.http.request("GET", url, headers)
        if response.status == 404:
            raise UpstreamUnavailable(f"{url}: no such image (HTTP 404)")
        if response.status >= 400:
            raise HttpError(url, f"HTTP {response.status}", response.status)
        self.http.store(url, ACCEPT, response)
        return response

    def resolve(self, ref: str, os_name: str, arch: str) -> ResolvedImage:
        """The digest of `ref` for linux/`arch`, through the registry mirror if one is configured."""
        name = ImageName.parse(ref)
        base = _endpoint(name.registry, self.mirrors)
        response = self._manifest(base, name.repository, name.tag)
        digest = "sha256:" + hashlib.sha256(response.body).hexdigest()
        served = response.headers.get("docker-content-digest")
        if served and served != digest:
            raise UpstreamUnavailable(
                f"{base}/v2/{name.repository}/manifests/{name.tag}: body hashes to {digest}, registry says {served}"
            )
        try:
            manifest = json.loads(response.body)
        except ValueError:
            raise UpstreamUnavailable(
                f"{base}/v2/{name.repository}/manifests/{name.tag}: not a JSON manifest"
            ) from None
        media_type = manifest.get("mediaType") or response.content_type
        platform = f"{os_name}/{arch}"
        if media_type in INDEX_TYPES or "manifests" in manifest:
            for entry in manifest.get("manifests", []):
                wanted = entry.get("platform", {})
                if wanted.get("os") == os_name and wanted.get("architecture") == arch:
                    return ResolvedImage(ref, entry["digest"], digest, platform)
            offered = sorted(
                f"{e.get('platform', {}).get('os')}/{e.get('platform', {}).get('architecture')}"
                for e in manifest.get("manifests", [])
            )
            raise BuilderError(f"{ref}: no {platform} image in its index (offers {', '.join(offered)})")
        config = manifest.get("config", {}).get("digest")
        if config is None:
            raise UpstreamUnavailable(f"{ref}: manifest has no config")
        image_config = self._blob_json(base, name.repository, config)
        found = f"{image_config.get('os')}/{image_config.get('architecture')}"
        if found != platform:
            raise BuilderError(f"{ref}: is a single {found} image, the cell needs {platform}")
        return ResolvedImage(ref, digest, None, platform)

    def manifest(self, ref: str, digest: str) -> dict[str, Any]:
        """The manifest `digest` of `ref`'s repository (through its mirror), checked against its digest."""
        name = ImageName.parse(ref)
        base = _endpoint(name.registry, self.mirrors)
        response = self._manifest(base, name.repository, digest)
        if "sha256:" + hashlib.sha256(response.body).hexdigest() != digest:
            raise UpstreamUnavailable(f"{base}/v2/{name.repository}/manifests/{digest}: content does not match")
        data = json.loads(response.body)
        return data if isinstance(data, dict) else {}

    def _blob_json(self, base: str, repository: str, digest: str) -> dict[str, object]:
        url = f"{base}/v2/{repository}/blobs/{digest}"
        headers = {"Authorization": f"Bearer {self._tokens[repository]}"} if repository in self._tokens else {}
        response = self.http.get(url, headers=headers)
        if "sha256:" + hashlib.sha256(response.body).hexdigest() != digest:
            raise UpstreamUnavailable(f"{url}: content does not match its digest")
        data = json.loads(response.body)
        return data if isinstance(data, dict) else {}


def bearer_token(http: HttpClient, token_url: str, headers: dict[str, str] | None = None) -> str:
    """The token a registry's token service hands out (distribution's token auth), or an error
    naming the URL."""
    response = http.request("GET", token_url, headers)
    if response.status != 200:
        raise HttpError(token_url, f"token request refused (HTTP {response.status})", response.status)
    try:
        data = json.loads(response.body)
        return str(data.get("token") or data["access_token"])
    except (ValueError, KeyError) as exc:
        raise UpstreamUnavailable(f"{token_url}: no token in the response ({exc})") from None
