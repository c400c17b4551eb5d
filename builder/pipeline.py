"""Where commands meet the library: each function runs one stage of the pipeline for a command and
returns values the CLI prints. Policy lives here (which lock to build from, when to re-lock), not
in the CLI.

Network code (builder.upstream) and engines are imported inside the functions that use them, so
that planning and rendering from a lock, and every catalogue-only command, start fast and never
load them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from builder.catalogue.documents import Catalogue
from builder.catalogue.models import Stack
from builder.errors import CheckFailed, Drift, UpstreamUnavailable, UsageError
from builder.fsutil import check_output_dir, claim_output_dir, write_atomic
from builder.lock.model import Decision, Lock, current_lock
from builder.lock.paths import lock_paths
from builder.plan.stages import Plan, make_plan
from builder.upstream.options import UpstreamOptions

if TYPE_CHECKING:
    from builder.build.options import StackSettings
    from builder.bundle.check import BundleVerdict
    from builder.bundle.make import BundleRequest
    from builder.lock.locking import LockResult
    from builder.progress import Reporter
    from builder.sbom.make import SbomResult

Progress = Callable[[str], None]


def _upstreams(options: UpstreamOptions) -> Any:
    from builder.upstream.upstreams import Upstreams

    return Upstreams(options)


def check_index_names(catalogue: Catalogue, options: UpstreamOptions) -> None:
    """Every `--index NAME=URL` names an index of the catalogue (or `default`): a misspelled name
    would otherwise be ignored, and the build would use the upstream the user meant to replace."""
    from builder.catalogue.documents import did_you_mean_text
    from builder.rules.compat import DEFAULT_INDEX

    known = [*sorted(catalogue.indexes), DEFAULT_INDEX]
    for name in options.index_overrides:
        if name not in known:
            hint = did_you_mean_text(name, known) or f"the catalogue's indexes: {', '.join(known)}"
            raise UsageError(f"--index {name}=...: '{name}' is not an index of the catalogue", hint=hint)


# ---------------------------------------------------------------- lock


def lock(
    catalogue: Catalogue,
    stack_name: str,
    targets: list[str],
    lock_dir: Path,
    options: UpstreamOptions,
    reporter: Reporter,
    *,
    upgrade: bool = False,
) -> list[LockResult]:
    """Lock each target of the stack (all of them when `targets` is empty)."""
    check_index_names(catalogue, options)
    from builder.lock.locking import lock_target

    stack = catalogue.stack(stack_name).model
    results = []
    with _upstreams(options) as upstreams:
        for target in targets or list(stack.targets):
            with reporter.group(f"lock {stack.name} on {target}"):
                results.append(
                    lock_target(catalogue, stack.name, target, lock_dir, upstreams, reporter.step, upgrade=upgrade)
                )
    return results


def check_locks(
    catalogue: Catalogue, stack_name: str, targets: list[str], lock_dir: Path, options: UpstreamOptions
) -> list[str]:
    """The targets whose locks are current; a failed check listing every change otherwise."""
    check_index_names(catalogue, options)
    from builder.lock.locking import lock_drift

    stack = catalogue.stack(stack_name).model
    targets = targets or list(stack.targets)
    with _upstreams(options) as upstreams:
        found = [
            f"{target}: {change}"
            for target in targets
            for change in lock_drift(catalogue, stack.name, target, lock_dir, upstreams)
        ]
    if found:
        raise Drift(f"the lock of {stack.name}", found)
    return targets


# ---------------------------------------------------------------- plan and render


@dataclass(frozen=True)
class PlanView:
    """`build plan`: the heavy-package decisions, where they came from, and the stages when locked."""

    decisions: list[Decision]
    origin: Literal["lock", "resolved"]
    lock_path: Path | None
    plan: Plan | None

    def origin_text(self) -> str:
        return f"lock {self.lock_path}" if self.origin == "lock" else "resolved now (there is no lock yet)"


def locked_plan(
    catalogue: Catalogue,
    stack: Stack,
    target: str,
    lock_dir: Path,
    options: UpstreamOptions,
    build_memory_gb: float | None,
    lock: Lock | None = None,
) -> tuple[Plan, Lock]:
    """The stage plan of a current lock (read here unless given); reads no network."""
    catalogue.target(stack, target)
    lock = lock if lock is not None else current_lock(catalogue, stack, target, lock_dir)
    plan = make_plan(
        catalogue, stack, target, lock, build_memory_gb,
        image_mirrors=options.image_mirrors, git_mirrors=options.git_mirrors,
    )  # fmt: skip
    return plan, lock


def plan(
    catalogue: Catalogue,
    stack_name: str,
    target: str,
    lock_dir: Path,
    options: UpstreamOptions,
    build_memory_gb: float | None,
) -> PlanView:
    """From the lock when there is one (a stale, corrupt or tampered lock is a failed check, never
    quietly replaced); with no lock at all, the decisions resolved now, without stages."""
    check_index_names(catalogue, options)
    stack_doc = catalogue.stack(stack_name)
    target_value = catalogue.target(stack_doc.model, target)
    if lock_paths(lock_dir, stack_doc.model.name, target).exists():
        plan_value, current = locked_plan(catalogue, stack_doc.model, target, lock_dir, options, build_memory_gb)
        return PlanView(current.image.packages, "lock", current.paths.image_lock, plan_value)
    from builder.lock.candidates import gather
    from builder.lock.environment import resolve
    from builder.rules.platform import TargetPlatform

    platform = TargetPlatform.of(target_value.cell, target_value.device)
    with _upstreams(options) as upstreams:
        candidates = gather(catalogue, stack_doc, target_value, upstreams)
        cell_indexes = upstreams.index_urls(catalogue, target_value)
        decisions = resolve(catalogue, stack_doc, candidates, platform, upstreams, cell_indexes).decisions
    return PlanView(decisions, "resolved", None, None)


@dataclass(frozen=True)
class Rendered:
    plan: Plan
    files: int


def render(
    catalogue: Catalogue,
    stack_name: str,
    target: str,
    lock_dir: Path,
    options: UpstreamOptions,
    build_memory_gb: float | None,
    out: Path,
) -> Rendered:
    """Write every rendered file of a current lock into `out`."""
    check_index_names(catalogue, options)
    from builder.render.files import render_files, write_tree

    stack = catalogue.stack(stack_name).model
    check_output_dir(out, protect=catalogue.root)
    plan_value, current = locked_plan(catalogue, stack, target, lock_dir, options, build_memory_gb)
    files = render_files(plan_value, catalogue, stack, current)
    write_tree(out, files, protect=catalogue.root)
    return Rendered(plan_value, len(files))


# ---------------------------------------------------------------- build


@dataclass(frozen=True)
class StackBuild:
    results: list[dict[str, Any]]
    skipped: list[dict[str, str]]
    inputs: list[Path]  # the files beyond the catalogue the images were made from: locks, app files


def _lock_to_build(
    catalogue: Catalogue,
    stack: Stack,
    target: str,
    lock_dir: Path,
    upstreams: Any,
    progress: Progress,
    update: bool,
) -> Lock:
    """The lock to build from: a stale or missing one is refused, or re-locked with --update-lock."""
    from builder.lock.locking import lock_target

    try:
        return current_lock(catalogue, stack, target, lock_dir)
    except CheckFailed:
        if not update:
            raise
    lock_target(catalogue, stack.name, target, lock_dir, upstreams, progress)
    return current_lock(catalogue, stack, target, lock_dir)


def build_stack(
    catalogue: Catalogue,
    stack_name: str,
    targets: list[str],
    lock_dir: Path,
    options: UpstreamOptions,
    settings: StackSettings,
    reporter: Reporter,
    signer: Any = None,
) -> StackBuild:
    """Lock-check, plan, render, build and deliver each target, then write its SBOMs and, with
    `signer` (a private key), sign and attest it; targets this host cannot build are skipped with
    the reason, and none buildable is an error."""
    check_index_names(catalogue, options)
    from builder.build.engines import select_engine
    from builder.build.runner import StackBuildOptions, index_build_args, machine_secrets
    from builder.upstream.credentials import netrc_file

    stack = catalogue.stack(stack_name).model
    targets = targets or list(stack.targets)
    for target in targets:
        catalogue.target(stack, target)
    check_output_dir(settings.out_dir, protect=catalogue.root)
    with _upstreams(options) as upstreams:
        locks = {
            target: _lock_to_build(catalogue, stack, target, lock_dir, upstreams, reporter.step, settings.update_lock)
            for target in targets
        }
        claim_output_dir(settings.out_dir, protect=catalogue.root)
        engine = select_engine(settings.engine, builder=settings.builder)
        publish = upstreams.without_credentials(settings.publish_wheels) if settings.publish_wheels else None
        secrets = machine_secrets()
        # Index credentials reach a build only as the `netrc` secret, never in a URL, argument or layer.
        with netrc_file(upstreams.credentials, also=secrets.get("netrc")) as netrc:
            if netrc is not None:
                secrets["netrc"] = netrc
            build_options = StackBuildOptions(
                out_dir=settings.out_dir,
                registry=settings.registry,
                push=settings.push,
                publish_wheels=publish,
                build_args=index_build_args(upstreams),
                secrets=secrets,
                force=settings.force,
            )
            results, skipped = _build_targets(
                catalogue, stack, locks, lock_dir, options, settings, engine, build_options, upstreams, reporter, signer
            )
    if not results:
        reasons = "; ".join(f"{s['target']}: {s['reason']}" for s in skipped)
        raise UpstreamUnavailable(f"no target of {stack.name} can be built on this host ({reasons})")
    return StackBuild(results, skipped, _inputs(catalogue, stack, [lock_paths(lock_dir, stack.name, t) for t in locks]))


def _inputs(catalogue: Catalogue, stack: Stack, locks: list[Any]) -> list[Path]:
    """Every lock file and app file a stack's images are made from (the catalogue's own files aside)."""
    found = [path for paths in locks for path in sorted(paths.directory.glob("*")) if path.is_file()]
    for item in stack.app.files if stack.app else []:
        source = catalogue.root / item.src
        found += sorted(p for p in source.rglob("*") if p.is_file()) if source.is_dir() else [source]
    return found


def _build_targets(
    catalogue: Catalogue,
    stack: Stack,
    locks: dict[str, Lock],
    lock_dir: Path,
    options: UpstreamOptions,
    settings: StackSettings,
    engine: Any,
    build_options: Any,
    upstreams: Any,
    reporter: Reporter,
    signer: Any,
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    from concurrent.futures import Future, ThreadPoolExecutor
    from functools import partial

    from builder.build.engines import emulation_problem, host_arch
    from builder.build.fastpath import read_result
    from builder.build.runner import build_target
    from builder.build.wheelcache import WheelCache
    from builder.prove import prove

    results: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    cache = WheelCache(options.cache_dir)
    for target, current in locks.items():
        with reporter.group(f"build {stack.name} on {target} with {engine.name}"):
            plan_value, _ = locked_plan(catalogue, stack, target, lock_dir, options, settings.build_memory_gb, current)
            arch = plan_value.platform.oci_arch
            problem = emulation_problem(arch, host_arch())
            if problem is not None:
                reporter.step(f"skipped {target}: {problem}")
                skipped.append({"target": target, "reason": problem, "arch": arch})
                continue
            previous = read_result(settings.out_dir / stack.name / target)
            app = app_stage(catalogue, stack, plan_value, current)
            with ThreadPoolExecutor(1) as pool:
                app_scan: list[Future[int]] = []  # syft on the app files runs while the engine builds
                result = build_target(
                    engine, catalogue, stack, plan_value, current, upstreams, cache, build_options, reporter.step,
                    previous, on_build=partial(_start, pool, app_scan, count_app_packages, app, catalogue.root),
                )  # fmt: skip
                result = prove(
                    catalogue.root, result, plan_value, current, signer, upstreams.http, reporter.step,
                    insecure=(settings.registry or "").startswith("http://"), previous=previous,
                    app=app, app_packages=app_scan[0].result if app_scan else None,
                )  # fmt: skip
            write_atomic(Path(result["context"]).parent / "result.json", json.dumps(result, indent=2) + "\n")
            results.append(result)
    return results, skipped


def app_stage(catalogue: Catalogue, stack: Stack, plan: Plan, lock: Lock) -> Any:
    """What the app stage of `plan`'s image adds (builder.sbom.layered.AppStage)."""
    from builder.render.files import app_context_files, app_stage_files
    from builder.sbom.layered import AppStage

    files = app_stage_files(catalogue, stack, app_context_files(plan, catalogue, stack, lock))
    return AppStage(files, stack.app.workdir if stack.app else None)


def _start(pool: Any, started: list[Any], function: Callable[..., Any], *args: Any) -> None:
    started.append(pool.submit(function, *args))


def count_app_packages(app: Any, root: Path) -> int:
    """What syft finds in the app files alone; -1 when there is no earlier scan that could be re-used."""
    from builder.sbom import layered
    from builder.sbom.make import syft_config_bytes
    from builder.sbom.policy import load_site
    from builder.sbom.syft import syft_binary

    if not any(layered.records_dir().glob("*.json.gz")):
        return -1
    return layered.app_packages(app, syft_binary(), syft_config_bytes(load_site(root)))


# ---------------------------------------------------------------- trust: keys, signatures, attestations, verify


def _http(cache_dir: Path | None = None) -> Any:
    from builder.upstream.http import HttpClient

    return HttpClient(cache_dir)


def resolve_image(text: str, http: Any) -> Any:
    """IMAGE (a registry reference or oci:PATH) resolved to its manifest digest."""
    from builder.upstream.images import parse_image, resolve

    return resolve(parse_image(text), http)


def sign_image(image: str, key_path: Path, password: bytes, fmt: Literal["simple", "bundle"]) -> dict[str, Any]:
    from builder.sign.attach import sign
    from builder.sign.keys import read_private_key

    key = read_private_key(key_path, password)  # a wrong password stops here, before anything is written
    http = _http()
    try:
        resolved = resolve_image(image, http)
        attached = sign(resolved, key, fmt)
    finally:
        http.close()
    return {"image": resolved.ref.at(resolved.digest), "digest": resolved.digest, **attached.to_json()}


def attest_image(image: str, key_path: Path, password: bytes, kind: str, predicate_file: Path) -> dict[str, Any]:
    from builder.errors import UsageError
    from builder.sign.attach import attest
    from builder.sign.dsse import predicate_type
    from builder.sign.keys import read_private_key

    uri = predicate_type(kind)
    try:
        predicate = json.loads(predicate_file.read_text())
    except FileNotFoundError:
        raise UsageError(f"--predicate {predicate_file}: no such file") from None
    except ValueError as error:
        raise UsageError(f"--predicate {predicate_file}: not JSON ({error})") from None
    key = read_private_key(key_path, password)
    http = _http()
    try:
        resolved = resolve_image(image, http)
        attached = attest(resolved, key, uri, predicate)
    finally:
        http.close()
    return {
        "image": resolved.ref.at(resolved.digest),
        "digest": resolved.digest,
        "predicateType": uri,
        **attached.to_json(),
    }


@dataclass(frozen=True)
class Verified:
    image: str
    digest: str
    checks: list[Any]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)


def verify_image(image: str, key_path: Path, require: list[str], root: Path | None, lock_dir: Path | None) -> Verified:
    """Every check `build verify` makes; the lock the image's label names is used when it is at hand."""
    from builder.sign.keys import read_public_key
    from builder.verify import image_labels, verify

    key = read_public_key(key_path)
    http = _http()
    try:
        resolved = resolve_image(image, http)
        locked = _locked_content(image_labels(resolved), root, lock_dir)
        checks = verify(resolved, key, require, locked)
    finally:
        http.close()
    return Verified(resolved.ref.at(resolved.digest), resolved.digest, checks)


def _locked_content(labels: dict[str, str], root: Path | None, lock_dir: Path | None) -> Any:
    """The packages of the lock an image's labels name, when that lock is at hand (else None)."""
    from builder.lock.model import read_lock
    from builder.verify import LockedContent

    stack, target = labels.get("builder.stack"), labels.get("builder.target")
    if root is None or not stack or not target:
        return None
    paths = lock_paths(lock_dir or root / "locks", stack, target)
    if not paths.exists():
        return None
    return LockedContent.of(read_lock(paths))


def _keyless_target(image: str, what: str) -> tuple[str, str, str]:
    """(the cosign CLI, the image pinned by the digest builder resolved, that digest): keyless
    signing and verification go through cosign, as they need Fulcio and Rekor."""
    from builder import process
    from builder.errors import UsageError
    from builder.upstream.images import parse_image

    if parse_image(image).layout is not None:
        raise UsageError(f"{image}: {what} needs a registry image")
    cosign = process.require_tool(
        "cosign", "install the cosign CLI (in GitHub Actions: the sigstore/cosign-installer action)"
    )
    http = _http()
    try:
        resolved = resolve_image(image, http)
    finally:
        http.close()
    return cosign, resolved.ref.at(resolved.digest), resolved.digest


def sign_keyless(image: str) -> dict[str, Any]:
    """Keyless signing (Sigstore, the CI's OIDC identity) through the cosign CLI: builder resolves
    the digest and signs exactly that."""
    from builder import process
    from builder.errors import ToolFailed

    cosign, pinned, digest = _keyless_target(image, "keyless signing (sign an OCI layout with --key)")
    done = process.run([cosign, "sign", "--yes", pinned], timeout=600)
    if done.returncode != 0:
        raise ToolFailed(f"cosign sign {pinned} failed (exit {done.returncode}): {done.tail()}")
    return {"image": pinned, "digest": digest, "where": "keyless (cosign)", "added": True}


def verify_keyless(
    image: str, require: list[str], identity_regexp: str, issuer: str, workflow_repository: str | None
) -> Verified:
    """`build verify --keyless`: Sigstore keyless signatures and attestations, checked by the cosign
    CLI (it needs Fulcio's roots and Rekor), over the digest builder resolved."""
    from builder import process
    from builder.verify import Identity, keyless_checks, keyless_commands

    cosign, pinned, digest = _keyless_target(image, "keyless verification")
    identity = Identity(identity_regexp, issuer, workflow_repository)
    outcomes = []
    for name, argv in keyless_commands(cosign, pinned, require, identity):
        done = process.run(argv, timeout=600)
        kind = argv[argv.index("--type") + 1] if "--type" in argv else "signature"
        outcomes.append((name, kind, done.returncode == 0, "" if done.returncode == 0 else done.tail()))
    return Verified(pinned, digest, keyless_checks(digest, outcomes, identity))


# ---------------------------------------------------------------- sbom


def sbom(
    root: Path,
    image: str,
    stack_name: str | None,
    target: str | None,
    lock_dir: Path,
    out: Path,
    *,
    source_date_epoch: int | None,
    reporter: Reporter,
) -> SbomResult:
    """`build sbom`: the image's SBOMs from syft, joined with the current lock of stack x target
    when both are named (a stale or missing lock is refused, as for a build); the site's policy and
    syft configuration from `root/sbom/`."""
    from builder.fsutil import default_cache_dir
    from builder.sbom.contents import lock_contents
    from builder.sbom.make import make_sboms
    from builder.sbom.policy import load_site
    from builder.upstream.images import parse_image

    ref = parse_image(image)
    site = load_site(root)
    contents = None
    if stack_name is not None and target is not None:
        from builder.validate import load_catalogue

        catalogue = load_catalogue(root)
        stack = catalogue.stack(stack_name).model
        # No mirrors: the SBOM names the base images and repositories the lock names.
        plan_value, current = locked_plan(
            catalogue, stack, target, lock_dir, UpstreamOptions(default_cache_dir()), None
        )
        contents = lock_contents(plan_value, current)
    return make_sboms(
        ref, out, contents=contents, site=site, source_date_epoch=source_date_epoch, progress=reporter.step
    )


# ---------------------------------------------------------------- smoke


@dataclass(frozen=True)
class SmokeSettings:
    image: str | None  # None: --here
    models: dict[str, Path]
    power_mode: str | None
    out_dir: Path | None  # None: out/<stack>/<target>/
    engine: Literal["auto", "docker", "podman"]


@dataclass(frozen=True)
class SmokeOutcome:
    report: dict[str, Any]
    code: int  # the runner's: 0 every check passed, 1 one failed, 3 no GPU
    path: Path
    attestation: dict[str, Any] | None


def smoke(
    catalogue: Catalogue,
    stack_name: str,
    target: str,
    lock_dir: Path,
    settings: SmokeSettings,
    reporter: Reporter,
    signer: Any = None,
) -> SmokeOutcome:
    """`build smoke`: the stack's smoke checks, run here or in the image, written to smoke.json;
    with `signer`, attached to the image as an attestation."""
    import sys
    import tempfile
    from datetime import datetime, timezone

    from builder.fsutil import default_cache_dir
    from builder.smoke.run import run_here
    from builder.smoke.spec import smoke_spec

    stack = catalogue.stack(stack_name).model
    plan_value, current = locked_plan(catalogue, stack, target, lock_dir, UpstreamOptions(default_cache_dir()), None)
    for name, directory in settings.models.items():
        if not directory.is_dir():
            raise UsageError(f"--model {name}={directory}: no such directory")
    out_dir = settings.out_dir or catalogue.root / "out" / stack.name / target
    log = out_dir / "smoke.log"
    with tempfile.TemporaryDirectory(prefix="builder-smoke-") as scratch:
        workdir = Path(scratch)
        if settings.image is None:
            models = {name: str(path.resolve()) for name, path in settings.models.items()}
            spec = smoke_spec(stack, plan_value, current, power_mode=settings.power_mode, models=models)
            reporter.step(f"smoke {stack.name} on {target} here ({sys.executable})")
            outcome = run_here(spec, workdir, log, reporter.step)
            resolved = None
        else:
            models = {name: f"/models/{name}" for name in settings.models}
            resolved, outcome = _smoke_image(settings, stack, plan_value, current, models, workdir, log, reporter)
    report = {
        **outcome.report,
        "builder": {
            "stack": stack.name,
            "target": target,
            "lock-checksum": current.checksum,
            "mode": "here" if settings.image is None else "image",
            "image": resolved.ref.at(resolved.digest) if resolved is not None else None,
            "finished": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    }
    path = out_dir / "smoke.json"
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(report, indent=2) + "\n")
    attestation = None
    if signer is not None and resolved is not None:
        from builder.sign.attach import attest
        from builder.verify import SMOKE

        reporter.step(f"attesting the smoke result for {resolved.digest}")
        attached = attest(resolved, signer, SMOKE, report)
        attestation = {"predicateType": SMOKE, **attached.to_json()}
    return SmokeOutcome(report, outcome.code, path, attestation)


def _smoke_image(
    settings: SmokeSettings,
    stack: Stack,
    plan_value: Plan,
    current: Lock,
    models: dict[str, str],
    workdir: Path,
    log: Path,
    reporter: Reporter,
) -> tuple[Any, Any]:
    """Resolve the image to its digest, make it runnable by the engine, and run the runner in it."""
    from builder.smoke.run import HostFacts, container_client, gpu_access, load_layout, run_in_image
    from builder.smoke.spec import smoke_spec
    from builder.upstream.images import LayoutStore, parse_image

    assert settings.image is not None
    ref = parse_image(settings.image)
    kind, client = container_client(settings.engine)
    http = _http()
    try:
        resolved = resolve_image(settings.image, http)
    finally:
        http.close()
    pinned = resolved.ref.at(resolved.digest)
    spec = smoke_spec(stack, plan_value, current, power_mode=settings.power_mode, models=models, image=pinned)
    runnable = pinned
    if ref.layout is not None:
        names = [name for name, digest in LayoutStore(ref.layout).manifests_by_name() if digest == resolved.digest]
        if not names or not names[0]:
            raise UsageError(f"{settings.image}: the image {resolved.digest} has no tag in its layout to copy it by")
        runnable = load_layout(kind, ref.layout, names[0], resolved.digest)
    gpu = gpu_access(kind, HostFacts.read())
    platform = f"linux/{plan_value.platform.oci_arch}"
    outcome = run_in_image(client, gpu, runnable, spec, settings.models, workdir, log, reporter.step, platform)
    return resolved, outcome


# ---------------------------------------------------------------- report


@dataclass(frozen=True)
class ReportSettings:
    results_dir: Path  # where `build stack` wrote out/<stack>/<target>/
    out_dir: Path  # where report.html, report.md and the PNGs go
    benchmark: Path | None = None  # the rebuild benchmark's figures (benchmarks/rebuild.py --json)


def report(
    catalogue: Catalogue, stack_name: str, targets: list[str], lock_dir: Path, settings: ReportSettings
) -> dict[str, Path]:
    """`build report`: the stack's targets (all when `targets` is empty) and the whole matrix, from
    what build, smoke and verify wrote; returns the files written."""
    import os
    from datetime import datetime, timezone

    from builder.report.inputs import read_benchmark, read_target
    from builder.report.page import make_report, write_report

    stack = catalogue.stack(stack_name).model
    targets = targets or list(stack.targets)
    for target in targets:
        catalogue.target(stack, target)
    if settings.out_dir.exists() and not settings.out_dir.is_dir():
        raise UsageError(f"--out {settings.out_dir}: is a file, not a directory")
    # SOURCE_DATE_EPOCH pins "now" (lock ages, the page's date) for reproducible reports.
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "")
    now = datetime.fromtimestamp(int(epoch), timezone.utc) if epoch.isdigit() else datetime.now(timezone.utc)
    benchmark = read_benchmark(settings.benchmark) if settings.benchmark is not None else None
    matrix = [
        read_target(catalogue, settings.results_dir, lock_dir, other.model.name, target)
        for other in catalogue.stacks.values()
        for target in other.model.targets
    ]
    chosen = [next(i for i in matrix if i.stack == stack.name and i.target == target) for target in targets]
    built = make_report(catalogue, stack, chosen, matrix, benchmark, now)
    return write_report(built, settings.out_dir)


# ---------------------------------------------------------------- bundle


def bundle(request: BundleRequest, options: UpstreamOptions, reporter: Reporter) -> dict[str, Any]:
    """`build bundle`: the signed image of a build, its proof, lock and wheels in one tar."""
    from builder.bundle.make import make_bundle

    with _upstreams(options) as upstreams:
        return make_bundle(request, upstreams.http, reporter.step)


def bundle_verify(path: Path, key_path: Path) -> BundleVerdict:
    """`build bundle verify`: every member checked offline against the public key."""
    from builder.bundle.check import verify_bundle
    from builder.sign.keys import read_public_key

    return verify_bundle(path, read_public_key(key_path))


def bundle_import(
    path: Path, repository: str, wheels_index: str | None, key_path: Path | None, reporter: Reporter
) -> dict[str, Any]:
    """`build bundle import`: the bundle's image with its signatures into a registry, its wheels
    into an index (verified against the key first, when one is given)."""
    from builder.bundle.load import import_bundle
    from builder.fsutil import default_cache_dir
    from builder.sign.keys import read_public_key

    key = read_public_key(key_path) if key_path is not None else None
    with _upstreams(UpstreamOptions(default_cache_dir())) as upstreams:
        index = upstreams.without_credentials(wheels_index) if wheels_index else None
        return import_bundle(path, repository, index, key, upstreams.http, reporter.step)
