"""Rendering a plan into a Dockerfile, docker-bake.json, compose.yaml, pixi.toml and a build context.

`render_files` is pure (plan and catalogue in, file contents out); `write_tree` is the only IO.
"""

from __future__ import annotations

import json
import posixpath
import shutil
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import yaml

from builder import __version__
from builder.catalogue.documents import Catalogue
from builder.catalogue.models import Stack
from builder.fsutil import OUTPUT_MARKER, claim_output_dir
from builder.lock.model import Lock
from builder.plan.stages import SRC_DIR, WHEEL_DIR, Plan
from builder.smoke.spec import IMAGE_RUNNER, RUNNER, smoke_spec

SMOKE_RUNNER, SMOKE_SPEC = "smoke/runner.py", "smoke/spec.json"  # in the context; /opt/builder/smoke/ in the image

APP_UID = 10001
# hadolint rules the output ignores, and why (README "Rendering" repeats them):
HADOLINT_IGNORES = {
    "DL3008": "apt packages come from the digest-pinned base image's own Ubuntu release; their versions are not locked",
    "DL3042": "builder stages keep pip's cache in a BuildKit cache mount, outside the image",
    "DL3003": "recipe steps may cd inside the source tree; each step runs in its own subshell from the source directory",
    "DL3064": "runtime variables such as MAX_NUM_BATCHED_TOKENS match its secret-name pattern; secrets are build secrets only",
}


@cache  # one compile of the templates per run: a build renders its Dockerfile three times
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("builder.render", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=False,
        autoescape=False,
    )
    env.filters["dq"] = json.dumps  # a JSON string is a valid double-quoted Dockerfile string
    env.filters["sq"] = lambda text: "'" + str(text).replace("'", "'\\''") + "'"
    env.filters["oneline"] = lambda text: " ".join(str(text).split())
    return env


@dataclass(frozen=True)
class AppFile:
    context_path: str
    dest: str
    source: Path


def image_name(stack: Stack, target: str) -> str:
    name = stack.outputs.image.name if stack.outputs.image else stack.name
    return f"{name}:{target.replace('/', '-')}"


def _labels(plan: Plan, stack: Stack) -> dict[str, str]:
    runtime_ref, _, runtime_digest = plan.runtime_image.partition("@")
    labels = {
        "org.opencontainers.image.title": stack.outputs.image.name if stack.outputs.image else stack.name,
        "org.opencontainers.image.description": " ".join(stack.description.split()),
        "org.opencontainers.image.version": f"{plan.target.replace('/', '-')}-{plan.lock_checksum.removeprefix('sha256:')[:12]}",
        "org.opencontainers.image.base.name": runtime_ref,
        "org.opencontainers.image.base.digest": runtime_digest,
        "builder.stack": plan.stack,
        "builder.target": plan.target,
        "builder.cuda": plan.cell.cuda,
        "builder.lock-checksum": plan.lock_checksum,
        "builder.smoke-runner": IMAGE_RUNNER,
    }
    if plan.cell.jetpack:
        labels["builder.jetpack"] = plan.cell.jetpack
        labels["builder.l4t"] = plan.cell.l4t or ""
    return labels


def _app_files(catalogue: Catalogue, stack: Stack) -> list[AppFile]:
    if stack.app is None:
        return []
    return [AppFile(f"app/{item.src}", item.dest, catalogue.root / item.src) for item in stack.app.files]


def dockerfile(plan: Plan, catalogue: Catalogue, stack: Stack, prebuilt: frozenset[str] = frozenset()) -> str:
    """The Dockerfile; recipes in `prebuilt` get no builder stage: the steps that install their
    wheels mount them from the context (`prebuilt/<recipe>/wheels/...`, put there from the wheel cache)."""
    return (
        _environment()
        .get_template("Dockerfile.j2")
        .render(
            plan=plan,
            stages={b.name: b for b in plan.builders},
            version=__version__,
            python=plan.platform.python,
            src_dir=SRC_DIR,
            wheel_dir=WHEEL_DIR,
            uid=APP_UID,
            app=stack.app,
            app_files=_app_files(catalogue, stack),
            labels=_labels(plan, stack),
            prebuilt=prebuilt,
        )
    )


def bake(plan: Plan, stack: Stack, prebuilt: frozenset[str] = frozenset()) -> dict[str, Any]:
    platform = f"linux/{plan.platform.oci_arch}"

    def target(stage: str, **extra: Any) -> dict[str, Any]:
        return {
            "context": ".",
            "dockerfile": "Dockerfile",
            "target": stage,
            "platforms": [platform],
            "cache-from": [f"type=local,src=.buildkit-cache/{stage}"],
            "cache-to": [f"type=local,dest=.buildkit-cache/{stage},mode=max"],
            **extra,
        }

    built = [b for b in plan.builders if b.recipe not in prebuilt]  # the Dockerfile has stages for these only
    builders = {b.name: target(b.name, args={"BUILDKIT_SBOM_SCAN_STAGE": "true"}) for b in built}
    contexts = {b.name: f"target:{b.name}" for b in built}
    targets = {
        **builders,
        "runtime": target("runtime", contexts=contexts),
        "app": target("app", contexts=contexts, tags=[image_name(stack, plan.target)], attest=["type=sbom"]),
    }
    return {"group": {"default": {"targets": ["app"]}, "builders": {"targets": sorted(builders)}}, "target": targets}


def compose(plan: Plan, stack: Stack) -> dict[str, Any]:
    service: dict[str, Any] = {
        "image": image_name(stack, plan.target),
        "build": {
            "context": ".",
            "dockerfile": "Dockerfile",
            "target": "app",
            "platforms": [f"linux/{plan.platform.oci_arch}"],
        },
    }
    if plan.device.kind == "jetson":
        service["runtime"] = "nvidia"  # Jetson's iGPU comes through the NVIDIA container runtime
    service["deploy"] = {
        "resources": {"reservations": {"devices": [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]}}
    }
    if plan.env:
        service["environment"] = dict(plan.env)
    if stack.app and stack.app.ports:
        service["ports"] = [f"{port}:{port}" for port in stack.app.ports]
    if plan.imports:
        service["healthcheck"] = {
            "test": ["CMD", "python", "-c", "import " + ", ".join(plan.imports)],
            "interval": "30s",
            "timeout": "30s",
            "retries": 3,
            "start_period": "60s",
        }
    return {"name": stack.name, "services": {stack.name: service}}


def _toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{key} = {_toml_value(item)}" for key, item in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    return json.dumps(value)


def pixi(plan: Plan, stack: Stack, lock: Lock) -> str:
    """A bare-metal environment for the cell: its platform, Python and the locked packages."""
    dependencies: dict[str, Any] = {}
    for requirement in plan.runtime:
        decision = lock.image.decision(requirement.name)
        if decision is not None and decision.kind == "wheel":
            dependencies[requirement.name] = {"version": f"=={requirement.version}", "index": decision.source}
        else:
            dependencies[requirement.name] = f"=={requirement.version}"
    for builder in plan.builders:
        dependencies[builder.recipe] = {"git": builder.repository, "rev": builder.commit}
    platform = "linux-aarch64" if plan.platform.arch == "aarch64" else "linux-64"
    lines = [
        f"# Generated by builder {__version__} for {plan.stack} on {plan.target}: do not edit.",
        "[workspace]",
        f"name = {json.dumps(plan.stack)}",
        'channels = ["conda-forge"]',
        f"platforms = [{json.dumps(platform)}]",
        "",
        "[dependencies]",
        f"python = {json.dumps(plan.platform.python + '.*')}",
        "",
        "[pypi-dependencies]",
        *(f"{json.dumps(name)} = {_toml_value(value)}" for name, value in sorted(dependencies.items())),
        "",
        "[activation.env]",
        *(f"{key} = {json.dumps(value)}" for key, value in plan.env.items()),
    ]
    return "\n".join(lines) + "\n"


def render_files(
    plan: Plan, catalogue: Catalogue, stack: Stack, lock: Lock, prebuilt: frozenset[str] = frozenset()
) -> dict[str, bytes]:
    """Every output file, by path relative to the output directory."""
    files: dict[str, bytes] = {
        "Dockerfile": dockerfile(plan, catalogue, stack, prebuilt).encode(),
        "docker-bake.json": (json.dumps(bake(plan, stack, prebuilt), indent=2, sort_keys=True) + "\n").encode(),
        "compose.yaml": yaml.safe_dump(compose(plan, stack), sort_keys=False).encode(),
        "requirements.txt": "".join(f"{r.line()}\n" for r in plan.runtime).encode(),
        ".dockerignore": f".buildkit-cache\n{OUTPUT_MARKER}\n".encode(),
    }
    if stack.outputs.pixi:
        files["pixi.toml"] = pixi(plan, stack, lock).encode()
    for builder in plan.builders:
        files[f"builders/{builder.recipe}/requirements.txt"] = "".join(
            f"{r.line()}\n" for r in builder.needs_locked
        ).encode()
        files[f"builders/{builder.recipe}/build-requirements.txt"] = "".join(
            f"{r.line()}\n" for r in builder.build_requirements
        ).encode()
    return {**files, **app_context_files(plan, catalogue, stack, lock)}


def app_context_files(plan: Plan, catalogue: Catalogue, stack: Stack, lock: Lock) -> dict[str, bytes]:
    """The context files the app stage copies into the image: every image carries its own smoke
    test (the runner and the spec it was rendered with), then the stack's app files."""
    files = {
        SMOKE_RUNNER: RUNNER.read_bytes(),
        SMOKE_SPEC: (json.dumps(smoke_spec(stack, plan, lock), indent=2, sort_keys=True) + "\n").encode(),
    }
    for item in _app_files(catalogue, stack):
        if item.source.is_dir():
            for path in sorted(p for p in item.source.rglob("*") if p.is_file()):
                files[f"{item.context_path}/{path.relative_to(item.source).as_posix()}"] = path.read_bytes()
        else:
            files[item.context_path] = item.source.read_bytes()
    return files


def app_stage_files(catalogue: Catalogue, stack: Stack, files: dict[str, bytes]) -> dict[str, bytes]:
    """What the app stage's COPY steps put into the image, by absolute path, from the rendered
    context `files`: the smoke runner and spec, then the stack's app files (a later one wins)."""
    placed = {f"/opt/builder/{name}": data for name, data in files.items() if name.startswith("smoke/")}
    for item in _app_files(catalogue, stack):
        inside = [name for name in files if name.startswith(item.context_path + "/")]
        if inside:  # a directory: its contents go into dest
            for name in inside:
                placed[posixpath.join(item.dest, name.removeprefix(item.context_path + "/"))] = files[name]
        elif item.context_path in files:
            dest = item.dest + posixpath.basename(item.context_path) if item.dest.endswith("/") else item.dest
            placed[posixpath.normpath(dest)] = files[item.context_path]
    return placed


def write_tree(out: Path, files: dict[str, bytes], *, protect: Path) -> None:
    """Write all files into a fresh directory beside `out`, then swap it in: never half a render.
    Only a directory builder may replace is replaced (`claim_output_dir`); it is marked as such."""
    claim_output_dir(out, protect=protect)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for name, content in {**files, OUTPUT_MARKER: (out / OUTPUT_MARKER).read_bytes()}.items():
            path = staging / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        retired = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        out.rename(retired / out.name)
        staging.rename(out)
        shutil.rmtree(retired)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
