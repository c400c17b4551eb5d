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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from builder import __version__
from builder.build import fastpath
from builder.build.engines import BuildRequest, Docker, Engine, bake_entitlements, bake_overrides
from builder.build.fastpath import fast_path_line, fast_result, utc_now
from builder.build.wheelcache import CachedWheels, WheelCache, publish
from builder.catalogue.documents import Catalogue
from builder.catalogue.models import Stack
from builder.errors import BuildFailed, CheckFailed, HttpError, ToolFailed, UpstreamUnavailable
from builder.fsutil import write_atomic
from builder.lock.model import Lock
from builder.plan.stages import WHEEL_DIR, BuilderStage, Plan
from builder.process import LoggedCommand, run_logged_together
from builder.render.files import image_name, render_files, write_tree
from builder.rules.mirrors import plain_http
from builder.upstream.http import HttpClient
from builder.upstream.images import open_store, parse_image
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
    force: bool = False  # build even when the last build's image still stands for these inputs


@dataclass
class StageRun:
    name: str
    seconds: float
    cached: bool
    log: str | None = None
    engine_cached_steps: int = 0
    started: float | None = None  # seconds after the target's build started: steps that overlap ran at once
    finished: float | None = None
    wave: int | None = None  # which wave of source builds it ran with

    def to_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "name": self.name,
            "seconds": round(self.seconds, 2),
            "cached": self.cached,
            "log": self.log,
            "engine_cached_steps": self.engine_cached_steps,
        }
        if self.started is not None and self.finished is not None:
            found["started"], found["finished"] = round(self.started, 2), round(self.finished, 2)
        if self.wave is not None:
            found["wave"] = self.wave
        return found


@dataclass(frozen=True)
class Step:
    """One engine command of a build: what result.json and progress call it, and its argv."""

    name: str
    argv: list[str]
    what: str = ""
    cwd: Path | None = None


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
        self.started = time.monotonic()
        self.tags = image_tags(plan, stack, options.registry)

    def files(self, prebuilt: frozenset[str]) -> dict[str, bytes]:
        return render_files(self.plan, self.catalogue, self.stack, self.lock, prebuilt)

    def write_context(self, prebuilt: Mapping[str, CachedWheels]) -> None:
        write_tree(self.context, self.files(frozenset(prebuilt)), protect=self.catalogue.root)
        add_prebuilt(self.context, prebuilt)

    def content_key(self) -> str:
        """The image's content key (see fastpath): the context it is built from has every source
        build's wheels prebuilt, each named by its stage key."""
        context = self.files(frozenset(builder.recipe for builder in self.plan.builders))
        return fastpath.content_key(
            lock_checksum=self.plan.lock_checksum,
            context=fastpath.context_digest(context),
            engine=self.engine.name,
            platform=self.platform,
            tags=self.tags,
            stored="registry" if self.delivers_to_registry else "oci-layout",
        )

    @property
    def delivers_to_registry(self) -> bool:
        return self.options.push and self.options.registry is not None

    # ---------------------------------------------------------------- engine steps

    def _engine(self, stage: str, request: BuildRequest | list[str], what: str = "") -> StageRun:
        """One engine command, logged as `logs/<stage>.log`; progress names the stage as result.json does."""
        argv = self.engine.build_argv(request) if isinstance(request, BuildRequest) else request
        return self._together([Step(stage, argv, what)])[0]

    def _together(self, steps: list[Step], wave: int | None = None) -> list[StageRun]:
        """Engine commands at once; the first failure is raised after all have ended."""
        runs, failure = self._run_steps(steps, wave)
        if failure is not None:
            raise failure
        return runs

    def _run_steps(self, steps: list[Step], wave: int | None) -> tuple[list[StageRun], BuildFailed | None]:
        """Engine commands at once, each logged as `logs/<name>.log`: the runs that succeeded, and
        the first failure (returned, so that the caller keeps what the others made)."""
        for step in steps:
            self.progress(f"{step.name}{step.what and ' ' + step.what} ({self.engine.name}, {self.platform})")
        commands = [
            LoggedCommand(step.argv, self.engine.build_env(), self.logs / f"{step.name}.log", step.name,
                          self.engine.transient_failures, step.cwd)
            for step in steps
        ]  # fmt: skip
        runs, failure = [], None
        for step, command, ran in zip(steps, commands, run_logged_together(commands, self.progress), strict=True):
            if ran.failure is not None:
                failure = failure or ran.failure
                continue
            self.progress(f"{step.name}: done in {ran.seconds:.1f} s")
            run = StageRun(step.name, ran.seconds, False, str(command.log), engine_cache_hits(command.log),
                           ran.started - self.started, ran.finished - self.started, wave)  # fmt: skip
            self.stages.append(run)
            runs.append(run)
        return runs, failure

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

    def _image_step(self) -> Step:
        request = self._request("app", tags=self.tags, iidfile=self.directory / "iid")
        return Step("runtime+app", self.engine.build_argv(request))

    def _pull_step(self, role: str) -> Step:
        image = self.plan.runtime_image if role == "runtime" else self.plan.devel_image
        return Step(f"pull-{role}", self.engine.pull_argv(image, insecure_registry(image)), f"{image}")

    # ---------------------------------------------------------------- source builds, in waves

    def source_builds(self) -> tuple[dict[str, CachedWheels], dict[str, Any], bool]:
        """Every builder stage's wheels: from the cache when its key is there, else built once and
        kept; the stages of one wave are built at once. Returns the wheels, the wheel-cache report,
        and whether the image was built too (alongside the last wave, where memory allows)."""
        prebuilt: dict[str, CachedWheels] = {}
        by_name = {builder.name: builder for builder in self.plan.builders}
        waves: list[list[BuilderStage]] = []
        for wave in self.plan.waves:
            missing = []
            for name in wave:
                cached = self.cache.get(by_name[name].key)
                if cached is None:
                    missing.append(by_name[name])
                    continue
                self.progress(f"{name}: wheel cache hit ({by_name[name].key[:19]})")
                self.stages.append(StageRun(name, 0.0, True))
                prebuilt[by_name[name].recipe] = cached
            if missing:
                waves.append(missing)
        # BuildKit builds a stage two builds need once, so the image may start with the last wave.
        alongside = bool(waves) and self.plan.runtime_alongside and self.engine.merges_concurrent_builds
        if isinstance(self.engine, Docker) and self.engine.bakes and waves:
            alongside = alongside and len(waves) == 1  # one bake runs every wave: the image would start with the first
            self._bake(waves, prebuilt, alongside)
        else:
            self._waves(waves, prebuilt, alongside)
        return prebuilt, self._wheel_report(prebuilt), alongside

    def _waves(self, waves: list[list[BuilderStage]], prebuilt: dict[str, CachedWheels], alongside: bool) -> None:
        if any(len(wave) > 1 for wave in waves) and not self.engine.merges_concurrent_builds:
            self._together([self._pull_step("devel")])  # once, not once per build of the wave
        for index, wave in enumerate(waves):
            self.write_context(prebuilt)  # earlier waves' wheels are prebuilt now
            exports = {builder.name: self._export_dir(builder) for builder in wave}
            steps = [
                Step(b.name, self.engine.build_argv(self._request(f"wheels-{b.recipe}", output=exports[b.name])))
                for b in wave
            ]
            last = index == len(waves) - 1
            if index == 0 and not (alongside and last):
                steps.append(self._pull_step("runtime"))  # the runtime base arrives while sources compile
            if alongside and last:
                steps.append(self._image_step())
            if len(steps) > 1:
                peak = sum(b.peak_memory_gb for b in wave)
                self.progress(
                    f"wave {index + 1} of {len(waves)}: {', '.join(step.name for step in steps)} at once "
                    f"(source builds ~{peak:g} of {self.plan.build_memory_gb:g} GB)"
                )
            self._keep_wheels(wave, exports, self._run_steps(steps, index)[1], prebuilt)

    def _bake(self, waves: list[list[BuilderStage]], prebuilt: dict[str, CachedWheels], alongside: bool) -> None:
        """buildx: one `bake` of every missing source build from the rendered docker-bake.json
        (BuildKit runs a wave's stages in parallel, the next wave after it, on the builder's nodes)."""
        assert isinstance(self.engine, Docker)
        missing = [builder for wave in waves for builder in wave]
        self.write_context(prebuilt)
        exports = {builder.name: self._export_dir(builder) for builder in missing}
        requests = {b.name: self._request(f"wheels-{b.recipe}", output=exports[b.name]) for b in missing}
        overrides = self.directory / "bake-overrides.json"
        write_atomic(overrides, json.dumps(bake_overrides(requests), indent=2) + "\n")
        argv = self.engine.bake_argv(
            [self.context / "docker-bake.json", overrides],
            [builder.name for builder in missing],
            bake_entitlements(requests, self.context),
        )
        steps = [Step("bake-" + "+".join(b.recipe for b in missing), argv, "", self.context)]
        if alongside:
            steps.append(self._image_step())
        self._keep_wheels(missing, exports, self._run_steps(steps, None)[1], prebuilt)

    def _export_dir(self, builder: BuilderStage) -> Path:
        return Path(tempfile.mkdtemp(prefix=f".wheels-{builder.recipe}-", dir=self.directory))

    def _keep_wheels(
        self,
        built: list[BuilderStage],
        exports: dict[str, Path],
        failure: BuildFailed | None,
        prebuilt: dict[str, CachedWheels],
    ) -> None:
        """Put what each finished stage exported into the wheel cache (and publish it); then raise
        the first failure: a stage that failed does not cost its neighbours their wheels."""
        try:
            for builder in built:
                wheels = sorted((exports[builder.name] / WHEEL_DIR.strip("/") / builder.recipe).glob("*.whl"))
                if not wheels:
                    if failure is None:
                        raise CheckFailed(f"{builder.name} produced no wheel (log: {self.logs / builder.name}.log)")
                    continue
                cached = self.cache.put(builder.key, wheels, self._wheel_meta(builder.name))
                prebuilt[builder.recipe] = cached
                if self.options.publish_wheels:
                    self.progress(
                        f"{builder.name}: publishing {len(cached.wheels)} wheel(s) to {self.options.publish_wheels}"
                    )
                    publish(self.http, cached.wheels, self.options.publish_wheels)
        finally:
            for directory in exports.values():
                shutil.rmtree(directory, ignore_errors=True)
        if failure is not None:
            raise failure

    def _wheel_report(self, prebuilt: Mapping[str, CachedWheels]) -> dict[str, Any]:
        hits = {stage.name for stage in self.stages if stage.cached}
        return {
            builder.recipe: {
                "key": builder.key,
                "cache_hit": builder.name in hits,
                "wheels": [wheel.name for wheel in prebuilt[builder.recipe].wheels],
                "sha256": dict(sorted(prebuilt[builder.recipe].sha256.items())),
                "published": bool(self.options.publish_wheels) and builder.name not in hits,
            }
            for builder in self.plan.builders
        }

    def _wheel_meta(self, stage: str) -> dict[str, Any]:
        return {
            "stage": stage,
            "stack": self.stack.name,
            "target": self.plan.target,
            "platform": self.platform,
            "created-by": f"builder {__version__}",
        }

    # ---------------------------------------------------------------- image and delivery

    def image(self) -> None:
        """Build the runtime and app stages (builder stages all prebuilt)."""
        self._together([self._image_step()])

    def image_id(self) -> str:
        return (self.directory / "iid").read_text().strip()

    def deliver(self) -> tuple[str, str, dict[str, Any]]:
        """Push the immutable tag and point the moving tag at the same manifest (the digest is the
        identity), or write an OCI layout: (where, digest, manifest)."""
        moving, immutable = self.tags
        digestfile = self.directory / "digest"
        digestfile.unlink(missing_ok=True)
        if self.delivers_to_registry:
            insecure = insecure_registry(str(self.options.registry))
            argv = self.engine.push_argv(immutable, immutable, digestfile, insecure)
            run = self._engine(f"push-{immutable.rpartition(':')[2]}", argv, f"to {immutable}")
            digest = read_digest(digestfile, Path(run.log or ""))
            return "registry", digest, self._tag_in_registry(moving, digest, insecure)
        layout = self.directory / "oci"
        shutil.rmtree(layout, ignore_errors=True)
        tag = immutable.rpartition(":")[2]
        argv = self.engine.oci_layout_argv(immutable, layout, tag, digestfile)
        run = self._engine("oci-layout", argv, f"in {layout}")
        digest = read_digest(digestfile, Path(run.log or ""))
        manifest: dict[str, Any] = json.loads(
            (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_text()
        )
        return "oci-layout", digest, manifest

    def _tag_in_registry(self, tag: str, digest: str, insecure: bool) -> dict[str, Any]:
        """Tag the pushed manifest through the registry's API: one request, not a second push."""
        ref = replace(parse_image(tag), insecure=insecure)
        store = open_store(ref, self.http)
        found = store.manifest(digest)
        if found is None:
            raise ToolFailed(f"{ref.name}@{digest} is not in the registry right after pushing it")
        self.progress(f"tagging {tag} (the pushed manifest {digest[:19]}...)")
        store.put_manifest(str(ref.tag), found[0], found[1])
        manifest: dict[str, Any] = json.loads(found[0])
        return manifest


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
    previous: dict[str, Any] | None = None,
    on_build: Callable[[], object] | None = None,
) -> dict[str, Any]:
    """Build one locked stack x target, or find that the image of the last build (`previous`, its
    result.json) still stands for it: the fast path, no engine call, no push. Writes and returns
    its result.json. `on_build` is called when the engine is about to build (work to overlap)."""
    started_on = utc_now()
    job = TargetBuild(engine, catalogue, stack, plan, lock, cache, options, upstreams.http, progress)
    key = job.content_key()
    insecure = insecure_registry(options.registry or "")
    if not options.force:
        missing = fastpath.image_missing(previous, key, upstreams.http, insecure=insecure)
        if missing is None and previous is not None:
            progress(fast_path_line(previous))
            return fast_result(previous, started_on, time.monotonic() - job.started)
        progress(f"building {plan.target}: {missing}")
    if on_build is not None:
        on_build()
    progress(f"checking upstreams for {plan.target}")
    bases = preflight(plan, lock, upstreams)
    job.directory.mkdir(parents=True, exist_ok=True)
    prebuilt, wheels, built = job.source_builds()
    if not built:  # else the image was built beside the last wave, from the context as it was then
        job.write_context(prebuilt)
        job.image()
    where, digest, manifest = job.deliver()
    base_layers = layer_bytes(bases["runtime"])
    layers = layer_bytes(manifest)
    repository = job.tags[1].rpartition(":")[0]
    result = {
        "result-version": 1,
        "created-by": f"builder {__version__}",
        "stack": stack.name,
        "target": plan.target,
        "platform": job.platform,
        "engine": {"name": engine.name, "version": str(engine.version), **engine_details(engine)},
        "lock-checksum": plan.lock_checksum,
        "content-key": key,
        "fast-path": False,
        "image": {
            "repository": repository,
            "tags": list(job.tags),
            "digest": digest,
            "reference": f"{repository}@{digest}",
            "id": job.image_id(),
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
        "seconds": round(time.monotonic() - job.started, 2),
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


def engine_details(engine: Engine) -> dict[str, Any]:
    if isinstance(engine, Docker):
        return {"mode": engine.mode, **({"builder": engine.builder} if engine.builder else {})}
    return {}
