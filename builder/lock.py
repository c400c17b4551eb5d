"""Locks: the heavy packages decided per cell, the full environment as a PEP 751 pylock.toml (resolved by
uv), and an image lock with base-image digests, source commits and a checksum of every input file."""

from __future__ import annotations

import hashlib
import importlib
import json
import re
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from packaging.utils import canonicalize_name

from builder import __version__, process
from builder.catalogue import Catalogue, Document, did_you_mean_text
from builder.compat import DEFAULT_INDEX, Target, choose, excluded_on, usable_steps
from builder.errors import BuilderError, CheckFailed, Diagnostic, UpstreamUnavailable, UsageError, one_line
from builder.fsutil import write_atomic
from builder.git import GitResolver
from builder.http import HttpClient
from builder.index import IndexClient
from builder.models import Recipe, Stack
from builder.pipconfig import PipIndexes, machine_pip_indexes
from builder.platform import TargetPlatform
from builder.registry import RegistryClient
from builder.resolve import choose_ref, choose_wheel, combined

LOCK_VERSION = "1"
NEVER = "python_version < '0'"  # an override marker that removes a package from uv's resolution

Progress = Callable[[str], None]


@dataclass(frozen=True)
class LockOptions:
    lock_dir: Path
    cache_dir: Path
    index_overrides: dict[str, str] = field(default_factory=dict)
    image_mirrors: dict[str, str] = field(default_factory=dict)
    git_mirrors: dict[str, str] = field(default_factory=dict)
    offline: bool = False


@dataclass(frozen=True)
class Decision:
    """How one of the stack's heavy packages is obtained on one cell."""

    package: str
    recipe: str
    wanted: str
    kind: Literal["wheel", "default", "source"]
    version: str | None
    source: str  # index URL, "default" or repository
    why: str
    filename: str | None = None
    url: str | None = None
    sha256: str | None = None
    ref: str | None = None
    commit: str | None = None


class Unsatisfiable(BuilderError):
    """Nothing can serve a package on a cell; the lines point at who asked for it."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        super().__init__(diagnostics[0].message)
        self.diagnostics = diagnostics

    def lines(self) -> list[str]:
        return [diagnostic.render() for diagnostic in self.diagnostics]


class Drift(CheckFailed):
    def __init__(self, where: str, changes: list[str]) -> None:
        super().__init__(f"{where} is out of date")
        self.changes = changes

    def lines(self) -> list[str]:
        return [one_line(f"error: {self.message}: {change}") for change in self.changes]


# ---------------------------------------------------------------- the world a resolution reads


class World:
    """Everything resolution asks the outside: indexes, git, registries and the machine's pip setup."""

    def __init__(self, options: LockOptions) -> None:
        self.options = options
        self.http = HttpClient(options.cache_dir, offline=options.offline)
        self.index = IndexClient(self.http)
        self.git = GitResolver(options.cache_dir, offline=options.offline, mirrors=options.git_mirrors)
        self.registry = RegistryClient(self.http, options.image_mirrors)
        self._pip: PipIndexes | None = None

    def __enter__(self) -> World:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def default_indexes(self) -> PipIndexes:
        if DEFAULT_INDEX in self.options.index_overrides:
            return PipIndexes(self.options.index_overrides[DEFAULT_INDEX])
        if self._pip is None:
            self._pip = machine_pip_indexes().for_images()
        return self._pip

    def index_urls(self, catalogue: Catalogue, target: Target) -> dict[str, str]:
        urls = {}
        for name, path in target.cell.indexes.items():
            template = self.options.index_overrides.get(name, catalogue.indexes[name].url)
            urls[name] = template.replace("{path}", path)
        return urls


# ---------------------------------------------------------------- deciding heavy packages


def target_of(catalogue: Catalogue, stack: Stack, target_id: str) -> Target:
    if target_id not in stack.targets:
        hint = did_you_mean_text(target_id, stack.targets) or f"its targets: {', '.join(stack.targets)}"
        raise UsageError(f"'{target_id}' is not a target of stack '{stack.name}'", hint=hint)
    return Target(target_id, catalogue.cells[target_id].model, catalogue.device_of(target_id))


def decide(catalogue: Catalogue, stack_doc: Document[Stack], target: Target, world: World) -> list[Decision]:
    """For each heavy package: the newest matching wheel on its pinned index, else a source build."""
    stack = stack_doc.model
    recipes = {name: doc.model for name, doc in catalogue.recipes.items()}
    urls = world.index_urls(catalogue, target)
    platform = TargetPlatform.of(target.cell, target.device)
    decisions, problems = [], []
    for position, package in enumerate(stack.packages):
        if excluded_on(stack, package.recipe, target.id):
            continue
        choice = choose(package, recipes, target)
        if choice.recipe is None:
            raise BuilderError(f"'{package.recipe}' cannot serve {target.id}: {'; '.join(choice.problems)}")
        decision, reasons = _decide_recipe(
            recipes[choice.recipe], package.recipe, choice.version, urls, platform, world
        )
        if decision is None:
            where = stack_doc.at("packages", position, "recipe", message="")
            text = f"{package.recipe} {choice.version or '(any version)'} cannot be obtained for {target.id}: {'; '.join(reasons)}"
            problems.append(Diagnostic(where.path, where.line, where.column, text))
        else:
            decisions.append(decision)
    if problems:
        raise Unsatisfiable(problems)
    return decisions


def _decide_recipe(
    recipe: Recipe, package: str, wanted: str, urls: dict[str, str], platform: TargetPlatform, world: World
) -> tuple[Decision | None, list[str]]:
    reasons: list[str] = []
    for step in usable_steps(recipe, urls):
        if step.wheel is not None and step.wheel.index == DEFAULT_INDEX:
            why = "from the machine's pip configuration, resolved with the rest of the environment"
            return Decision(package, recipe.name, wanted, "default", None, DEFAULT_INDEX, why), reasons
        if step.wheel is not None:
            url = urls[step.wheel.index]
            spec_set = combined(wanted, step.wheel.version)
            files = world.index.files(url, recipe.name)
            picked = choose_wheel(
                files, recipe.name, spec_set, platform, needs_cuda_local=step.wheel.local_version == "cuda"
            )
            cuda = f" +{platform.cuda_local}" if step.wheel.local_version == "cuda" else ""
            if picked.chosen is not None:
                file = picked.chosen.file
                sha = file.sha256 or world.http.sha256_of(file.url)
                why = (
                    f"newest wheel on {step.wheel.index} matching '{spec_set or 'any'}' for {platform.describe()}{cuda}"
                )
                decision = Decision(
                    package,
                    recipe.name,
                    wanted,
                    "wheel",
                    str(picked.chosen.version),
                    url,
                    why,
                    file.filename,
                    file.url,
                    sha,
                )
                return decision, reasons
            offers = f"offers {', '.join(picked.offered)}" if picked.offered else "offers nothing for this platform"
            if picked.wrong_cuda:
                offers += f"; built for another CUDA: {', '.join(picked.wrong_cuda)}"
            reasons.append(
                f"no wheel on {step.wheel.index} ({url}) matches '{spec_set or 'any'}' for {platform.describe()}{cuda} ({offers})"
            )
        if step.source is not None:
            source = step.source
            picked_ref = choose_ref(source.refs, combined(wanted))
            if picked_ref is None:
                reasons.append(f"no source ref satisfies '{wanted}' (refs: {', '.join(source.refs)})")
                continue
            version, ref = picked_ref
            commit = world.git.commit(source.repository, ref)
            why = "source build: " + ("; ".join(reasons) if reasons else "the recipe prefers building it")
            decision = Decision(
                package, recipe.name, wanted, "source", version, source.repository, why, ref=ref, commit=commit
            )
            return decision, reasons
    return None, reasons


# ---------------------------------------------------------------- inputs and their checksum


def input_files(catalogue: Catalogue, stack: Stack, target_id: str) -> list[Path]:
    """Every catalogue file the lock for stack x target depends on."""
    cell = catalogue.cells[target_id]
    names = set()
    for package in stack.packages:
        for name in [package.recipe, *(alt.recipe for alt in package.fallback)]:
            names.add(name)
            names.update(catalogue.recipes[name].model.depends)
    paths = [catalogue.stacks[stack.name].path, cell.path, catalogue.devices[cell.model.device].path]
    if catalogue.index_document is not None:
        paths.append(catalogue.index_document.path)
    paths += [catalogue.recipes[name].path for name in sorted(names)]
    return paths


def checksums(root: Path, paths: list[Path]) -> dict[str, str]:
    return {
        path.relative_to(root).as_posix(): "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(paths)
    }


def overall(files: dict[str, str]) -> str:
    text = "".join(f"{name} {digest}\n" for name, digest in sorted(files.items()))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------- the full environment through uv


def _requirements(stack: Stack, decisions: list[Decision], recipes: dict[str, Recipe]) -> tuple[list[str], list[str]]:
    requirements, overrides = [], []
    for decision in decisions:
        if decision.kind == "wheel":
            requirements.append(f"{decision.recipe} @ {decision.url}#sha256={decision.sha256}")
        elif decision.kind == "default":
            spec = ",".join(str(s) for s in combined(decision.wanted, _default_spec(recipes[decision.recipe])))
            requirements.append(f"{decision.recipe}{spec}")
        else:
            overrides.append(f"{decision.recipe}; {NEVER}")  # built from source, never taken from an index
    requirements += stack.requirements
    overrides += [f"{item.name}; {NEVER}" for item in stack.exclude]
    return requirements, overrides


def _default_spec(recipe: Recipe) -> str:
    return next((step.wheel.version for step in recipe.obtain if step.wheel and step.wheel.index == DEFAULT_INDEX), "")


def _uv() -> str:
    """The uv binary: the one installed with builder's dependencies, else one on PATH."""
    try:
        return str(importlib.import_module("uv").find_uv_bin())
    except (ImportError, FileNotFoundError, AttributeError):
        return process.require_tool("uv", "pip install uv")


def compile_pylock(requirements: list[str], overrides: list[str], platform: TargetPlatform, world: World) -> str:
    uv = _uv()
    with tempfile.TemporaryDirectory(prefix="builder-lock-") as scratch:
        directory = Path(scratch)
        (directory / "requirements.in").write_text("\n".join(requirements) + "\n")
        (directory / "overrides.txt").write_text("\n".join(overrides) + "\n")
        argv = [
            uv, "pip", "compile", "requirements.in",
            "--format", "pylock.toml", "--output-file", "pylock.toml",
            "--python-platform", platform.uv_platform, "--python-version", platform.python,
            "--override", "overrides.txt", "--no-header", "--no-config", "--no-python-downloads", "--quiet",
            "--cache-dir", str(world.options.cache_dir / "uv"),
            *world.default_indexes().uv_args(),
        ]  # fmt: skip
        if world.options.offline:
            argv.append("--offline")
        result = process.run(argv, cwd=directory, timeout=900)
        if result.returncode != 0:
            raise _uv_failure(result.stderr, requirements)
        return (directory / "pylock.toml").read_text()


def _uv_failure(stderr: str, requirements: list[str]) -> BuilderError:
    lines = [line.strip(" \u00d7\u2570\u2500\u25b6") for line in stderr.strip().splitlines() if line.strip()]
    text = " ".join(line for line in lines if not line.startswith("hint:"))
    text = re.sub(r"\s+", " ", text).replace("error: ", "")
    if "offline" in text.lower() or "network" in text.lower() or "connect" in text.lower():
        return UpstreamUnavailable(f"uv could not reach an index: {text}")
    return Conflict(f"no environment satisfies every requirement: {text}")


class Conflict(BuilderError):
    """uv found no environment; `explain` adds who asked for each package it names."""

    def explain(self, stack_doc: Document[Stack], decisions: list[Decision]) -> BuilderError:
        stack = stack_doc.model
        asked = []
        for position, package in enumerate(stack.packages):
            chosen = next((d for d in decisions if d.package == package.recipe), None)
            if chosen is not None and re.search(rf"\b{re.escape(chosen.recipe)}\b", self.message):
                where = stack_doc.at("packages", position, "recipe", message="").render().rsplit(": error:", 1)[0]
                got = f", chosen {chosen.version}" if chosen.version else ""
                asked.append(f"{where} asks for {package.recipe} {package.version or '(any version)'}{got}")
        for position, text in enumerate(stack.requirements):
            name = re.split(r"[\s<>=!~;\[(@]", text, maxsplit=1)[0]
            if re.search(rf"\b{re.escape(name)}\b", self.message):
                where = stack_doc.at("requirements", position, message="").render().rsplit(": error:", 1)[0]
                asked.append(f"{where} asks for {text}")
        return BuilderError(self.message + ("; " + "; ".join(asked) if asked else ""))


# ---------------------------------------------------------------- writing and checking


@dataclass(frozen=True)
class LockPaths:
    directory: Path

    @property
    def pylock(self) -> Path:
        return self.directory / "pylock.toml"

    @property
    def image_lock(self) -> Path:
        return self.directory / "image-lock.json"


def lock_paths(lock_dir: Path, stack: str, target_id: str) -> LockPaths:
    return LockPaths(lock_dir / stack / target_id)


def _source_entries(decisions: list[Decision]) -> str:
    blocks = []
    for decision in sorted((d for d in decisions if d.kind == "source"), key=lambda d: d.recipe):
        quote = json.dumps  # a JSON string is a valid TOML basic string
        vcs = f"type = {quote('git')}, url = {quote(decision.source)}, requested-revision = {quote(decision.ref)}"
        blocks.append(
            f"\n[[packages]]\nname = {quote(decision.recipe)}\nversion = {quote(decision.version)}\n"
            f"vcs = {{ {vcs}, commit-id = {quote(decision.commit)} }}\n"
        )
    return "".join(blocks)


def _pylock_hashes(text: str) -> dict[str, str]:
    """File name -> sha256 for every archive and wheel in a pylock."""
    data = read_toml(text)
    found = {}
    for package in data.get("packages", []):
        for item in [package.get("archive"), *package.get("wheels", [])]:
            if item and "url" in item and "sha256" in item.get("hashes", {}):
                found[item["url"].rsplit("/", 1)[-1].split("#")[0]] = item["hashes"]["sha256"]
    return found


def read_toml(text: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    return tomllib.loads(text)


def _check_pinned_names(pylock: str, decisions: list[Decision], catalogue: Catalogue, stack: Stack) -> None:
    """A package a recipe pins to its own index must never arrive from another index transitively."""
    ours = {canonicalize_name(d.recipe) for d in decisions}
    for package in read_toml(pylock).get("packages", []):
        name = canonicalize_name(package["name"])
        recipe = catalogue.recipes.get(name)
        if name in ours or recipe is None:
            continue
        pinned = [
            s.wheel.index for s in recipe.model.obtain if s.wheel and s.wheel.pinned and s.wheel.index != DEFAULT_INDEX
        ]
        if pinned:
            raise BuilderError(
                f"the environment pulls in {name} {package.get('version')} from the default index, "
                f"but recipes/{name}.yaml pins it to {pinned[0]}",
                hint=f"add '{name}' to the packages of stacks/{stack.name}.yaml, or exclude it",
            )


@dataclass
class LockResult:
    target: str
    paths: LockPaths
    decisions: list[Decision]
    image_lock: dict[str, Any]
    changed: bool


def lock_target(
    catalogue: Catalogue,
    stack_name: str,
    target_id: str,
    world: World,
    progress: Progress = lambda _: None,
    *,
    upgrade: bool = False,
) -> LockResult:
    """Lock one stack x target. An existing lock whose inputs, heavy packages and images are unchanged
    keeps its environment (like `uv lock`); `upgrade` re-resolves it from the indexes."""
    stack_doc = catalogue.stack(stack_name)
    stack = stack_doc.model
    target = target_of(catalogue, stack, target_id)
    platform = TargetPlatform.of(target.cell, target.device)
    recipes = {name: doc.model for name, doc in catalogue.recipes.items()}
    paths = lock_paths(world.options.lock_dir, stack.name, target_id)

    progress(f"{target_id}: deciding {len(stack.packages)} heavy packages")
    decisions = decide(catalogue, stack_doc, target, world)
    _refuse_rehash(paths, decisions)
    progress(f"{target_id}: resolving base images for {platform.oci_arch}")
    images = {
        role: asdict(world.registry.resolve(image.ref, "linux", platform.oci_arch))
        for role, image in (("runtime", target.cell.base_images.runtime), ("devel", target.cell.base_images.devel))
    }
    for role, image in (("runtime", target.cell.base_images.runtime), ("devel", target.cell.base_images.devel)):
        if image.digest and images[role]["digest"] != image.digest and images[role]["index_digest"] != image.digest:
            raise CheckFailed(f"{image.ref} resolves to {images[role]['digest']}, but {target_id} pins {image.digest}")
    files = checksums(catalogue.root, input_files(catalogue, stack, target_id))
    reusable = None if upgrade else _current_pylock(paths, files, decisions, images)
    if reusable is not None:
        progress(f"{target_id}: inputs, packages and images unchanged: keeping the locked environment")
        decisions, pylock = _locked_decisions(paths), reusable
    else:
        progress(f"{target_id}: resolving the environment with uv for {platform.uv_platform}")
        decisions, pylock = _resolve_environment(stack_doc, decisions, recipes, platform, world, catalogue)
    image_lock = {
        "lock-version": LOCK_VERSION,
        "created-by": f"builder {__version__}",
        "stack": stack.name,
        "target": target_id,
        "platform": {
            "python": platform.python,
            "arch": platform.arch,
            "glibc": f"{platform.glibc[0]}.{platform.glibc[1]}",
            "cuda": platform.cuda,
            "oci": f"linux/{platform.oci_arch}",
        },
        "inputs": {"checksum": overall(files), "files": files},
        "indexes": world.index_urls(catalogue, target),
        "base-images": images,
        "packages": [_decision_json(d) for d in decisions],
        "pylock-sha256": hashlib.sha256(pylock.encode()).hexdigest(),
    }
    text = json.dumps(image_lock, indent=2, sort_keys=True) + "\n"
    changed = not (paths.pylock.exists() and paths.image_lock.exists()) or (
        paths.pylock.read_text() != pylock or paths.image_lock.read_text() != text
    )
    paths.directory.mkdir(parents=True, exist_ok=True)
    write_atomic(paths.pylock, pylock)
    write_atomic(paths.image_lock, text)
    return LockResult(target_id, paths, decisions, image_lock, changed)


def _resolve_environment(
    stack_doc: Document[Stack],
    decisions: list[Decision],
    recipes: dict[str, Recipe],
    platform: TargetPlatform,
    world: World,
    catalogue: Catalogue,
) -> tuple[list[Decision], str]:
    stack = stack_doc.model
    requirements, overrides = _requirements(stack, decisions, recipes)
    try:
        pylock = compile_pylock(requirements, overrides, platform, world) + _source_entries(decisions)
    except Conflict as conflict:
        raise conflict.explain(stack_doc, decisions) from None
    _check_pinned_names(pylock, decisions, catalogue, stack)
    _validate_pylock(pylock)
    resolved = {canonicalize_name(p["name"]): p.get("version") for p in read_toml(pylock).get("packages", [])}
    decisions = [
        replace(d, version=resolved.get(canonicalize_name(d.recipe))) if d.kind == "default" else d for d in decisions
    ]
    return decisions, pylock


def _read_image_lock(paths: LockPaths) -> dict[str, Any] | None:
    try:
        data = json.loads(paths.image_lock.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _current_pylock(
    paths: LockPaths, files: dict[str, str], decisions: list[Decision], images: dict[str, Any]
) -> str | None:
    """The locked pylock text, if nothing it was made from has changed."""
    locked = _read_image_lock(paths)
    if locked is None or not paths.pylock.exists():
        return None
    pylock = paths.pylock.read_text()
    same = (
        locked.get("inputs", {}).get("files") == files
        and locked.get("base-images") == images
        and locked.get("pylock-sha256") == hashlib.sha256(pylock.encode()).hexdigest()
        and not _package_drift(locked.get("packages", []), decisions)
    )
    return pylock if same else None


def _locked_decisions(paths: LockPaths) -> list[Decision]:
    locked = _read_image_lock(paths) or {}
    return [Decision(**item) for item in locked.get("packages", [])]


def _decision_json(decision: Decision) -> dict[str, Any]:
    return {key: value for key, value in asdict(decision).items() if value is not None}


def _validate_pylock(text: str) -> None:
    from packaging.pylock import Pylock, PylockValidationError

    try:
        Pylock.from_dict(read_toml(text))
    except PylockValidationError as exc:
        raise BuilderError(f"uv wrote a pylock.toml that does not validate: {exc}") from None


def _refuse_rehash(paths: LockPaths, decisions: list[Decision]) -> None:
    """The same file name with new bytes is refused: an index re-uploaded a wheel."""
    if not paths.pylock.exists():
        return
    recorded = _pylock_hashes(paths.pylock.read_text())
    for decision in decisions:
        if decision.filename in recorded and decision.sha256 != recorded[decision.filename]:
            raise CheckFailed(
                f"{decision.filename}: the index now serves sha256 {decision.sha256}, "
                f"the lock recorded sha256 {recorded[decision.filename]}; refusing to lock different bytes under the same name",
                hint=f"if the new bytes are trusted, delete {paths.directory} and lock again",
            )


def check_target(catalogue: Catalogue, stack_name: str, target_id: str, world: World) -> list[str]:
    """Why the lock for stack x target is stale (empty when it is current)."""
    stack_doc = catalogue.stack(stack_name)
    stack = stack_doc.model
    target = target_of(catalogue, stack, target_id)
    paths = lock_paths(world.options.lock_dir, stack.name, target_id)
    if not paths.image_lock.exists() or not paths.pylock.exists():
        return [f"no lock at {paths.directory} (run 'build lock {stack.name} --target {target_id}')"]
    try:
        locked = json.loads(paths.image_lock.read_text())
        recorded_files: dict[str, str] = locked["inputs"]["files"]
    except (ValueError, KeyError, TypeError):
        return [f"{paths.image_lock} is not an image lock this version can read"]
    changes = []
    current = checksums(catalogue.root, input_files(catalogue, stack, target_id))
    for name in sorted(set(current) | set(recorded_files)):
        if name not in recorded_files:
            changes.append(f"input {name} is new since the lock")
        elif name not in current:
            changes.append(f"input {name} is no longer used")
        elif current[name] != recorded_files[name]:
            changes.append(f"input {name} changed since the lock")
    if hashlib.sha256(paths.pylock.read_bytes()).hexdigest() != locked.get("pylock-sha256"):
        changes.append(f"{paths.pylock} was edited after locking")
    if changes:
        return changes
    changes += _package_drift(locked.get("packages", []), decide(catalogue, stack_doc, target, world))
    platform = TargetPlatform.of(target.cell, target.device)
    for role, image in (("runtime", target.cell.base_images.runtime), ("devel", target.cell.base_images.devel)):
        now = world.registry.resolve(image.ref, "linux", platform.oci_arch)
        was = locked.get("base-images", {}).get(role, {})
        if now.digest != was.get("digest"):
            changes.append(
                f"{image.ref} now points at {now.digest} for {now.platform}, the lock has {was.get('digest')}"
            )
    return changes


def _package_drift(locked: list[dict[str, Any]], decisions: list[Decision]) -> list[str]:
    was = {item["recipe"]: item for item in locked}
    changes = []
    for decision in decisions:
        old = was.get(decision.recipe)
        if old is None:
            changes.append(f"{decision.recipe}: not in the lock")
        elif decision.filename and decision.filename == old.get("filename") and decision.sha256 != old.get("sha256"):
            changes.append(
                f"{decision.filename}: the index now serves sha256 {decision.sha256}, the lock recorded sha256 {old.get('sha256')}"
            )
        elif decision.kind == "default" and old.get("kind") == "default":
            continue  # its version is uv's to choose with the rest of the environment
        elif (decision.kind, decision.version, decision.commit) != (
            old.get("kind"),
            old.get("version"),
            old.get("commit"),
        ):
            now = f"{decision.kind} {decision.version}" + (f" @ {decision.commit[:12]}" if decision.commit else "")
            then = f"{old.get('kind')} {old.get('version')}" + (
                f" @ {str(old.get('commit'))[:12]}" if old.get("commit") else ""
            )
            changes.append(f"{decision.recipe}: the lock has {then}, resolving now gives {now} ({decision.why})")
    return changes
