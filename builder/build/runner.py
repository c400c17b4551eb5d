"""`build stack`, the main job: a locked plan is rendered, its source builds are taken from the
wheel cache or built once, the image is built, tagged, pushed by digest (or written to an OCI
layout) and described in `result.json`. This module is the IO edge: engines, files, registries."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from builder import __version__
from builder.build.engines import BuildRequest, Engine
from builder.build.wheelcache import CachedWheels, WheelCache, publish
from builder.catalogue.documents import Catalogue
from builder.catalogue.models import Stack
from builder.errors import CheckFailed, HttpError, ToolFailed, UpstreamUnavailable
from builder.fsutil import write_atomic
from builder.lock.model import Lock
from builder.plan.stages import WHEEL_DIR, Plan
from builder.process import run_logged
from builder.render.files import image_name, render_files, write_tree
from builder.rules.mirrors import plain_http
from builder.upstream.http import HttpClient
from builder.upstream.registry import RegistryClient
from builder.upstream.upstreams import Upstreams

Progress = Callable[[str], None]
CA_BUNDLE_CANDIDATES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "PIP_CERT")


@dataclass(frozen=True)
class StackBuildOptions:
    out_dir: Path  # out/: results land in out/<stack>/<target>/
    registry: str | None = None  # the image repository, e.g. registry.example:5000/team/maie
    push: bool = False
    publish_wheels: str | None = None
    build_args: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, Path] = field(default_factory=dict)


@dataclass
class StageRun:
    name: str
    seconds: float
    cached: bool
    log: str | None = None
    engine_cached_steps: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "seconds": round(self.seconds, 2),
            "cached": self.cached,
            "log": self.log,
            "engine_cached_steps": self.engine_cached_steps,
        }


# ---------------------------------------------------------------- engine logs


def engine_cache_hits(log: Path) -> int:
    """Steps the engine took from its layer cache (BuildKit `#N CACHED`, buildah `Using cache`)."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return 0
    return len(re.findall(r"^#\d+ CACHED$|Using cache ", text, re.MULTILINE))


# ---------------------------------------------------------------- inputs a build takes from the machine


def machine_secrets(environ: Mapping[str, str] | None = None) -> dict[str, Path]:
    """The machine's CA bundle (a proxy's CA) and netrc, passed as build secrets, never baked in."""
    environ = os.environ if environ is None else environ
    secrets = {}
    candidates = [environ[name] for name in CA_BUNDLE_CANDIDATES if environ.get(name)]
    for candidate in [*candidates, "/etc/ssl/certs/ca-certificates.crt"]:
        if Path(candidate).is_file():
            secrets["ca-bundle"] = Path(candidate)
            break
    netrc = Path(environ.get("NETRC") or Path(environ.get("HOME", "/nonexistent")) / ".netrc")
    if netrc.is_file():
        secrets["netrc"] = netrc
    return secrets


def index_build_args(upstreams: Upstreams) -> dict[str, str]:
    """Where builder stages pip-install build requirements: the `default` index as locking sees it."""
    indexes = upstreams.default_indexes()
    args = {}
    if indexes.index_url:
        args["PIP_INDEX_URL"] = indexes.index_url
    if indexes.extra_index_urls:
        args["PIP_EXTRA_INDEX_URL"] = " ".join(indexes.extra_index_urls)
    return args


def preflight(plan: Plan, lock: Lock, upstreams: Upstreams) -> dict[str, dict[str, Any]]:
    """Reach every upstream a build needs before starting one: the base images (through their
    mirrors) and each index host of the locked wheels. Returns the base manifests."""
    manifests = {}
    for role in ("devel", "runtime"):
        image = getattr(lock.image.base_images, role)
        manifests[role] = upstreams.registry.manifest(image.ref, image.digest)
    seen = set()
    for requirement in plan.runtime + [r for b in plan.builders for r in b.needs_locked]:
        host = urlsplit(requirement.url).netloc
        if host in seen:
            continue
        seen.add(host)
        try:
            response = upstreams.http.request("HEAD", requirement.url)
        except HttpError as error:
            raise UpstreamUnavailable(f"index {host} is unreachable: {error.message}") from None
        if response.status >= 400:
            raise UpstreamUnavailable(f"{requirement.url}: HTTP {response.status} (the locked wheel is gone?)")
    return manifests


# ---------------------------------------------------------------- one stack x target


def target_slug(target: str) -> str:
    return target.replace("/", "-")


def image_tags(plan: Plan, stack: Stack, registry: str | None) -> tuple[str, str]:
    """The moving `<target>` tag and the immutable `<target>-<lock checksum>` tag."""
    repository = registry.split("://", 1)[-1].rstrip("/") if registry else image_name(stack, plan.target).split(":")[0]
    slug = target_slug(plan.target)
    return f"{repository}:{slug}", f"{repository}:{slug}-{plan.lock_checksum.removeprefix('sha256:')[:12]}"


def insecure_registry(registry: str) -> bool:
    """Plain HTTP: an explicit http:// or a loopback registry (what docker allows by default)."""
    return plain_http(registry)


def _link_or_copy(source: Path, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def add_prebuilt(context: Path, prebuilt: Mapping[str, CachedWheels]) -> None:
    """Put cached wheels where the Dockerfile's install steps mount them from, with their sums."""
    for recipe, cached in prebuilt.items():
        root = context / "prebuilt" / recipe / WHEEL_DIR.strip("/")
        sums = []
        for wheel in cached.wheels:
            _link_or_copy(wheel, root / recipe / wheel.name)
            sums.append(f"{cached.sha256[wheel.name]}  {WHEEL_DIR}/{recipe}/{wheel.name}\n")
        (root / f"{recipe}.sha256").write_text("".join(sums))


def layer_bytes(manifest: dict[str, Any]) -> list[int]:
    return [int(layer.get("size", 0)) for layer in manifest.get("layers", [])]


class TargetBuild:
    """Builds one stack x target; each engine invocation is one logged step."""

    def __init__(
        self,
        engine: Engine,
        catalogue: Catalogue,
        stack: Stack,
        plan: Plan,
        lock: Lock,
        cache: WheelCache,
        options: StackBuildOptions,
        http: HttpClient,
        progress: Progress,
    ) -> None:
        self.engine, self.catalogue, self.stack, self.plan = engine, catalogue, stack, plan
        self.lock, self.cache, self.options, self.http, self.progress = lock, cache, options, http, progress
        self.directory = options.out_dir / stack.name / plan.target
        self.context = self.directory / "context"
        self.logs = self.directory / "logs"
        self.platform = f"linux/{plan.platform.oci_arch}"
        self.stages: list[StageRun] = []

    def write_context(self, prebuilt: Mapping[str, CachedWheels]) -> None:
        files = render_files(self.plan, self.catalogue, self.stack, self.lock, frozenset(prebuilt))
        write_tree(self.context, files, protect=self.catalogue.root)
        add_prebuilt(self.context, prebuilt)

    def _engine(self, stage: str, request: BuildRequest | list[str], what: str = "") -> StageRun:
        """One engine command, logged as `logs/<stage>.log`; progress names the stage as result.json does."""
        argv = self.engine.build_argv(request) if isinstance(request, BuildRequest) else request
        log = self.logs / f"{stage}.log"
        self.progress(f"{stage}{what and ' ' + what} ({self.engine.name}, {self.platform})")
        seconds = run_logged(argv, self.engine.build_env(), log, stage, self.progress, self.engine.transient_failures)
        self.progress(f"{stage}: done in {seconds:.1f} s")
        return StageRun(stage, seconds, False, str(log), engine_cache_hits(log))

    def _request(self, target: str, **extra: Any) -> BuildRequest:
        return BuildRequest(
            self.context,
            target,
            self.platform,
            secrets=dict(self.options.secrets),
            build_args=dict(self.options.build_args),
            tls_verify=not any(insecure_registry(image) for image in (self.plan.devel_image, self.plan.runtime_image)),
            **extra,
        )

    def source_builds(self) -> tuple[dict[str, CachedWheels], dict[str, Any]]:
        """Every builder stage's wheels: from the cache when its key is there, else built once and kept."""
        prebuilt: dict[str, CachedWheels] = {}
        report: dict[str, Any] = {}
        for builder in self.plan.builders:  # in wave order: a stage's dependencies are prebuilt by then
            cached = self.cache.get(builder.key)
            if cached is not None:
                self.progress(f"{builder.name}: wheel cache hit ({builder.key[:19]})")
                self.stages.append(StageRun(builder.name, 0.0, True))
            else:
                self.write_context(prebuilt)
                exported = Path(tempfile.mkdtemp(prefix=".wheels-", dir=self.directory))
                try:
                    run = self._engine(builder.name, self._request(f"wheels-{builder.recipe}", output=exported))
                    wheels = sorted((exported / WHEEL_DIR.strip("/") / builder.recipe).glob("*.whl"))
                    if not wheels:
                        raise CheckFailed(f"{builder.name} produced no wheel (log: {run.log})")
                    cached = self.cache.put(builder.key, wheels, self._wheel_meta(builder.name))
                finally:
                    shutil.rmtree(exported, ignore_errors=True)
                self.stages.append(run)
                if self.options.publish_wheels:
                    self.progress(
                        f"{builder.name}: publishing {len(cached.wheels)} wheel(s) to {self.options.publish_wheels}"
                    )
                    publish(self.http, cached.wheels, self.options.publish_wheels)
            prebuilt[builder.recipe] = cached
            hit = self.stages[-1].cached
            report[builder.recipe] = {
                "key": builder.key,
                "cache_hit": hit,
                "wheels": [wheel.name for wheel in cached.wheels],
                "sha256": dict(sorted(cached.sha256.items())),
                "published": bool(self.options.publish_wheels) and not hit,
            }
        return prebuilt, report

    def _wheel_meta(self, stage: str) -> dict[str, Any]:
        return {
            "stage": stage,
            "stack": self.stack.name,
            "target": self.plan.target,
            "platform": self.platform,
            "created-by": f"builder {__version__}",
        }

    def image(self) -> tuple[str, str, str]:
        """Build the runtime and app stages (builder stages all prebuilt): (moving, immutable, image id)."""
        moving, immutable = image_tags(self.plan, self.stack, self.options.registry)
        iidfile = self.directory / "iid"
        request = self._request("app", tags=(moving, immutable), iidfile=iidfile)
        self.stages.append(self._engine("runtime+app", request))
        return moving, immutable, iidfile.read_text().strip()

    def deliver(self, moving: str, immutable: str) -> tuple[str, str, dict[str, Any] | None]:
        """Push both tags (the digest is the identity) or write an OCI layout: (where, digest, manifest)."""
        digestfile = self.directory / "digest"
        digestfile.unlink(missing_ok=True)
        if self.options.push and self.options.registry:
            insecure = insecure_registry(self.options.registry)
            digest = ""
            for tag in (immutable, moving):
                argv = self.engine.push_argv(immutable, tag, digestfile, insecure)
                run = self._engine(f"push-{tag.rpartition(':')[2]}", argv, f"to {tag}")
                self.stages.append(run)
                digest = digest or read_digest(digestfile, Path(run.log or ""))
            return "registry", digest, None
        layout = self.directory / "oci"
        shutil.rmtree(layout, ignore_errors=True)
        tag = immutable.rpartition(":")[2]
        argv = self.engine.oci_layout_argv(immutable, layout, tag, digestfile)
        run = self._engine("oci-layout", argv, f"in {layout}")
        self.stages.append(run)
        digest = read_digest(digestfile, Path(run.log or ""))
        manifest = json.loads((layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_text())
        return "oci-layout", digest, manifest


def read_digest(digestfile: Path, log: Path) -> str:
    """The manifest digest: buildah and skopeo write a digest file, docker push prints it."""
    if digestfile.is_file() and digestfile.read_text().strip():
        return digestfile.read_text().strip()
    found = re.findall(r"digest: (sha256:[0-9a-f]{64})", log.read_text(errors="replace")) if log.is_file() else []
    if not found:
        raise ToolFailed(f"the engine reported no digest (log: {log})")
    return str(found[-1])


def build_target(
    engine: Engine,
    catalogue: Catalogue,
    stack: Stack,
    plan: Plan,
    lock: Lock,
    upstreams: Upstreams,
    cache: WheelCache,
    options: StackBuildOptions,
    progress: Progress,
) -> dict[str, Any]:
    """Build one locked stack x target; write and return its result.json."""
    started = time.monotonic()
    started_on = utc_now()
    progress(f"checking upstreams for {plan.target}")
    bases = preflight(plan, lock, upstreams)
    job = TargetBuild(engine, catalogue, stack, plan, lock, cache, options, upstreams.http, progress)
    job.directory.mkdir(parents=True, exist_ok=True)
    prebuilt, wheels = job.source_builds()
    job.write_context(prebuilt)
    moving, immutable, image_id = job.image()
    where, digest, manifest = job.deliver(moving, immutable)
    if manifest is None:
        manifest = pushed_manifest(
            upstreams, immutable.rpartition(":")[0], digest, insecure_registry(options.registry or "")
        )
    base_layers = layer_bytes(bases["runtime"])
    layers = layer_bytes(manifest)
    repository = immutable.rpartition(":")[0]
    result = {
        "result-version": 1,
        "created-by": f"builder {__version__}",
        "stack": stack.name,
        "target": plan.target,
        "platform": job.platform,
        "engine": {"name": engine.name, "version": str(engine.version)},
        "lock-checksum": plan.lock_checksum,
        "image": {
            "repository": repository,
            "tags": [moving, immutable],
            "digest": digest,
            "reference": f"{repository}@{digest}",
            "id": image_id,
            "stored": where,
            "oci-layout": str(job.directory / "oci") if where == "oci-layout" else None,
        },
        "base": {"runtime": plan.runtime_image, "devel": plan.devel_image},
        "sizes": {
            "layers_bytes": sum(layers),
            "base_bytes": sum(base_layers),
            "added_bytes": sum(layers[len(base_layers) :]),
            "layers": len(layers),
            "layer_bytes": layers,  # compressed, in the manifest's order; the first base_layers are the base's
            "base_layers": len(base_layers),
        },
        "stages": [stage.to_json() for stage in job.stages],
        "wheel_cache": wheels,
        "started": started_on,
        "finished": utc_now(),
        "seconds": round(time.monotonic() - started, 2),
        "context": str(job.context),
    }
    write_atomic(job.directory / "result.json", json.dumps(result, indent=2) + "\n")
    record_build(job.directory / BUILDS_LOG, result)
    return result


BUILDS_LOG = "builds.jsonl"  # one line per build of this stack x target: what `build report` compares


def record_build(log: Path, result: dict[str, Any]) -> None:
    """Append this build's timings to the target's history (result.json holds only the latest build)."""
    keep = ("started", "finished", "seconds", "engine", "stages", "wheel_cache", "sizes", "lock-checksum")
    line = json.dumps({"digest": result["image"]["digest"], **{key: result[key] for key in keep}}, sort_keys=True)
    with log.open("a", encoding="utf-8") as history:
        history.write(line + "\n")


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def pushed_manifest(upstreams: Upstreams, repository: str, digest: str, plain: bool) -> dict[str, Any]:
    """The manifest just pushed, read back from the registry (plain HTTP where pushing was)."""
    host = repository.split("/", 1)[0]
    mirrors = {host: f"http://{host}"} if plain else {}
    return RegistryClient(upstreams.http, mirrors).manifest(f"{repository}:pushed", digest)
