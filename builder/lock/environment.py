"""The whole Python environment of a cell, resolved jointly by uv among the candidates builder allows.

uv gets a project to resolve (a generated pyproject.toml) whose indexes are, in order:
- `builder-candidates`, explicit, a generated PEP 503 index listing exactly the files builder
  allows for each heavy package (the fitting wheels of its recipe's index) and, for versions that
  only a source build can provide, a metadata-only stand-in wheel carrying that version's
  requirements; every heavy package is pinned to it (`[tool.uv.sources]`), so no same-named wheel
  from another index can ever be chosen;
- the cell's own indexes, consulted first for every other package they carry (the Jetson index
  serves aarch64 builds of transitive dependencies such as xformers), with uv's first-index
  strategy: a package is taken from the first index that has it;
- the machine's default index for the rest.

Wheels are preferred: source stand-ins are offered for packages that have no fitting wheel, and for
versions no wheel offers only when the wheels alone have no solution. Stand-ins chosen by uv become
source builds in the lock (vcs entries with the commit).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import NormalizedName, canonicalize_name

from builder import memo
from builder.catalogue.documents import Catalogue, Document
from builder.catalogue.models import Stack
from builder.errors import BuilderError, Conflict, ToolFailed, UpstreamUnavailable
from builder.lock.candidates import Candidates, SourceOption
from builder.lock.model import Decision, read_toml
from builder.rules.compat import DEFAULT_INDEX
from builder.rules.platform import TargetPlatform
from builder.upstream.credentials import netrc_file
from builder.upstream.upstreams import Upstreams
from builder.upstream.uv import compile_environment

NEVER = "python_version < '0'"  # an override marker that removes a package from uv's resolution
CANDIDATES = "builder-candidates"
STUB_TAG = "py3-none-any"


@dataclass(frozen=True)
class Resolution:
    decisions: list[Decision]
    pylock: str


def resolve(
    catalogue: Catalogue,
    stack_doc: Document[Stack],
    candidates: list[Candidates],
    platform: TargetPlatform,
    upstreams: Upstreams,
    cell_indexes: dict[str, str],
) -> Resolution:
    """The environment of the stack on the cell, and how each heavy package is obtained in it."""
    heavy = [c for c in candidates if c.default_spec is None]
    try:
        return _resolve(catalogue, stack_doc, candidates, platform, upstreams, cell_indexes, wheels_first=True)
    except Conflict as conflict:
        _refuse_unreachable(heavy, upstreams)
        if not any(c.wheels and _unwheeled(c) for c in heavy):
            raise _explain(conflict, stack_doc, candidates) from None
    try:
        return _resolve(catalogue, stack_doc, candidates, platform, upstreams, cell_indexes, wheels_first=False)
    except Conflict as conflict:
        raise _explain(conflict, stack_doc, candidates) from None


def _verify_chosen_wheels(decisions: list[Decision], upstreams: Upstreams) -> None:
    """The bytes of every chosen heavy wheel hash to what the index lists (once per file and hash:
    the check is kept as a memo). An index that lists one hash and serves other bytes is refused."""
    for decision in decisions:
        if decision.kind != "wheel" or decision.url is None or upstreams.options.offline:
            continue
        key = memo.key(decision.url, [str(decision.sha256)], [])
        if memo.get("verified-wheel", key) is not None:
            continue
        served = upstreams.http.sha256_of(decision.url)
        if served != decision.sha256:
            raise UpstreamUnavailable(
                f"{decision.url}: the index lists sha256 {decision.sha256}, the file it serves hashes to {served}"
            )
        memo.put("verified-wheel", key, b"")


def _refuse_unreachable(candidates: list[Candidates], upstreams: Upstreams) -> None:
    """uv reports a wheel it could not download as 'no solution'; a listed file that does not
    download is the index's failure, named as such (exit 3), not the user's."""
    if upstreams.options.offline:
        return
    for item in candidates:
        for wheel in item.wheels:
            response = upstreams.http.request("HEAD", wheel.file.url)
            if response.status >= 400:
                raise UpstreamUnavailable(
                    f"{wheel.file.url}: HTTP {response.status} (listed by {item.index_url}, but it does not download)"
                )


def _unwheeled(candidates: Candidates) -> list[SourceOption]:
    """Source versions no fitting wheel offers."""
    wheel_versions = {str(w.version) for w in candidates.wheels}
    return [s for s in candidates.sources if s.version not in wheel_versions]


def _stubs_for(candidates: Candidates, wheels_first: bool) -> list[SourceOption]:
    if candidates.default_spec is not None:
        return []
    if not candidates.wheels:
        return list(candidates.sources)
    return [] if wheels_first else _unwheeled(candidates)


def _resolve(
    catalogue: Catalogue,
    stack_doc: Document[Stack],
    candidates: list[Candidates],
    platform: TargetPlatform,
    upstreams: Upstreams,
    cell_indexes: dict[str, str],
    *,
    wheels_first: bool,
) -> Resolution:
    stack = stack_doc.model
    with _workspace(upstreams.options.cache_dir, stack.name, platform) as work:
        stubs = {c.recipe: _stubs_for(c, wheels_first) for c in candidates}
        stub_dir = work / "stubs"
        _write_candidate_index(work / "candidates", stub_dir, candidates, stubs)
        (work / "pyproject.toml").write_text(_pyproject(stack, candidates, platform, work))
        overrides = [f"{item.name}; {NEVER}" for item in stack.exclude]
        pylock = _compile(work, overrides, platform, upstreams, "pyproject.toml", cell_indexes)
        decisions, pylock = _decisions(pylock, candidates, stubs, stub_dir.as_uri(), upstreams)
    _verify_chosen_wheels(decisions, upstreams)
    _check_pinned_names(pylock, decisions, catalogue, stack)
    _validate_pylock(pylock)
    return Resolution(decisions, pylock)


# ---------------------------------------------------------------- what uv is given


@contextmanager
def _workspace(cache_dir: Path, stack: str, platform: TargetPlatform) -> Iterator[Path]:
    """A directory for uv's project, made afresh each time at the same place for the same stack and
    platform: uv keys its cache by index URL, so --offline finds what an earlier lock fetched."""
    key = hashlib.sha256(f"{stack}\0{platform.uv_platform}\0{platform.python}".encode()).hexdigest()[:16]
    work = cache_dir / "resolve" / key
    if work.exists():
        shutil.rmtree(work)  # builder's own scratch space in its cache
    work.mkdir(parents=True)
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _write_candidate_index(
    root: Path, stub_dir: Path, candidates: list[Candidates], stubs: dict[str, list[SourceOption]]
) -> None:
    root.mkdir(parents=True)
    for item in candidates:
        if item.default_spec is not None:
            continue
        links = []
        for wheel in item.wheels:
            fragment = f"#sha256={wheel.file.sha256}" if wheel.file.sha256 else ""
            links.append((wheel.file.filename, wheel.file.url + fragment))
        for option in stubs[item.recipe]:
            stub = _stub_wheel(stub_dir, item.recipe, option)
            links.append((stub.name, f"{stub.as_uri()}#sha256={hashlib.sha256(stub.read_bytes()).hexdigest()}"))
        page = root / str(canonicalize_name(item.recipe))
        page.mkdir()
        anchors = "".join(f'<a href="{_html(url)}">{_html(name)}</a>\n' for name, url in links)
        (page / "index.html").write_text(f"<!DOCTYPE html>\n<html><body>\n{anchors}</body></html>\n")


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def _stub_wheel(directory: Path, name: str, option: SourceOption) -> Path:
    """A metadata-only wheel standing for a source build of `name` at `option.version`: it carries
    the requirements of that version, so the resolver can weigh it against the wheels it sits beside."""
    dist = re.sub(r"[-.]+", "_", str(canonicalize_name(name)))
    info = f"{dist}-{option.version}.dist-info"
    files = {
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {option.version}\n"
        + "".join(f"Requires-Dist: {requirement}\n" for requirement in option.requires),
        f"{info}/WHEEL": f"Wheel-Version: 1.0\nGenerator: builder\nRoot-Is-Purelib: true\nTag: {STUB_TAG}\n",
    }
    record = [
        f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b'=').decode()},{len(text.encode())}"
        for path, text in files.items()
    ]
    files[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,"]) + "\n"
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / f"{dist}-{option.version}-{STUB_TAG}.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(zipfile.ZipInfo(path, (1980, 1, 1, 0, 0, 0)), text)
    return wheel


def _toml(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid TOML basic string


def _compile(
    work: Path,
    overrides: list[str],
    platform: TargetPlatform,
    upstreams: Upstreams,
    source: str,
    cell_indexes: dict[str, str],
) -> str:
    """uv on `work/source` for the cell's platform, with the indexes and credentials of `upstreams`."""
    with netrc_file(upstreams.credentials) as netrc:
        return compile_environment(
            work,
            overrides,
            uv_platform=platform.uv_platform,
            python=platform.python,
            cache_dir=upstreams.options.cache_dir,
            find_links=list(upstreams.default_indexes().find_links),
            offline=upstreams.options.offline,
            netrc=netrc,
            source=source,
            index_args=_index_args(cell_indexes, upstreams),
        )


def _index_args(cell_indexes: dict[str, str], upstreams: Upstreams) -> list[str]:
    """The indexes for every package not pinned to the candidates, first to last: the cell's own,
    the machine's extra ones, then its default. (`uv pip` reads a project's non-explicit indexes
    from the command line only.)"""
    default = upstreams.default_indexes()
    args = [arg for url in [*cell_indexes.values(), *default.extra_index_urls] for arg in ("--index", url)]
    return args + (["--default-index", default.index_url] if default.index_url else [])


def _pyproject(stack: Stack, candidates: list[Candidates], platform: TargetPlatform, work: Path) -> str:
    requirements = [f"{c.recipe}{c.spec}" for c in candidates] + list(stack.requirements)
    lines = [
        "[project]",
        'name = "builder-lock"',
        'version = "0"',
        f"requires-python = {_toml('>=' + platform.python)}",
        "dependencies = [" + ", ".join(_toml(r) for r in requirements) + "]",
        "",
        "[[tool.uv.index]]",
        f"name = {_toml(CANDIDATES)}",
        f"url = {_toml((work / 'candidates').as_uri() + '/')}",
        "explicit = true",
    ]
    lines += ["", "[tool.uv.sources]"]
    lines += [f"{_toml(c.recipe)} = {{ index = {_toml(CANDIDATES)} }}" for c in candidates if c.default_spec is None]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- what uv answered


def _decisions(
    pylock: str,
    candidates: list[Candidates],
    stubs: dict[str, list[SourceOption]],
    stub_uri: str,
    upstreams: Upstreams,
) -> tuple[list[Decision], str]:
    packages = {canonicalize_name(p["name"]): p for p in read_toml(pylock).get("packages", [])}
    decisions, built = [], set()
    for item in candidates:
        package = packages.get(canonicalize_name(item.recipe))
        if package is None:
            raise ToolFailed(f"uv's environment has no {item.recipe}, which the stack asks for")
        version = str(package.get("version"))
        wheel: dict[str, object] = next(iter(package.get("wheels", [])), {})
        if item.default_spec is not None:
            decisions.append(_default_decision(item, version))
        elif str(wheel.get("url", "")).startswith(stub_uri):
            option = next(s for s in stubs[item.recipe] if s.version == version)
            decisions.append(_source_decision(item, option, upstreams))
            built.add(canonicalize_name(item.recipe))
        else:
            decisions.append(_wheel_decision(item, version, wheel))
    return decisions, _without(pylock, built) + _source_entries(decisions)


def _default_decision(item: Candidates, version: str) -> Decision:
    return Decision(
        package=item.package,
        recipe=item.recipe,
        wanted=item.wanted,
        kind="default",
        version=version,
        source=DEFAULT_INDEX,
        why="from the machine's pip configuration, resolved with the rest of the environment",
        candidates=item.digest(),
    )


def _wheel_decision(item: Candidates, version: str, wheel: dict[str, object]) -> Decision:
    chosen = next(w for w in item.wheels if str(w.version) == version)
    hashes = wheel.get("hashes")
    sha = str(hashes.get("sha256")) if isinstance(hashes, dict) else chosen.file.sha256
    newer = [str(w.version) for w in item.wheels if w.version > chosen.version]
    why = f"newest wheel on {item.index} matching '{item.spec or 'any'}'"
    if newer:
        why = f"{version} from {item.index}: the newest {item.recipe} the rest of the environment accepts ({', '.join(newer)} also offered)"
    return Decision(
        package=item.package,
        recipe=item.recipe,
        wanted=item.wanted,
        kind="wheel",
        version=version,
        source=str(item.index_url),
        why=why,
        filename=chosen.file.filename,
        url=chosen.file.url,
        sha256=sha,
        candidates=item.digest(),
    )


def _source_decision(item: Candidates, option: SourceOption, upstreams: Upstreams) -> Decision:
    repository = str(item.repository)
    reasons = "; ".join(item.reasons) if item.reasons else "the recipe prefers building it"
    if item.wheels:
        offered = ", ".join(str(w.version) for w in item.wheels)
        reasons = f"no wheel it offers ({offered}) fits the rest of the environment"
    newer = [s.version for s in item.sources if s.version != option.version and s.version > option.version]
    why = f"source build: {reasons}"
    if newer:
        why += f"; {option.version}, the newest version the rest of the environment accepts ({', '.join(newer)} also possible)"
    return Decision(
        package=item.package,
        recipe=item.recipe,
        wanted=item.wanted,
        kind="source",
        version=option.version,
        source=repository,
        why=why,
        ref=option.ref,
        commit=upstreams.git.commit(repository, option.ref),
        candidates=item.digest(),
    )


def _without(pylock: str, names: set[NormalizedName]) -> str:
    """The pylock text without the packages named (the stand-ins of source builds)."""
    head, *blocks = pylock.split("\n[[packages]]\n")
    kept = [b for b in blocks if canonicalize_name(str(read_toml(b).get("name", ""))) not in names]
    return "\n[[packages]]\n".join([head, *kept])


def _source_entries(decisions: list[Decision]) -> str:
    blocks = []
    for decision in sorted((d for d in decisions if d.kind == "source"), key=lambda d: d.recipe):
        vcs = f"type = {_toml('git')}, url = {_toml(decision.source)}, requested-revision = {_toml(str(decision.ref))}"
        blocks.append(
            f"\n[[packages]]\nname = {_toml(decision.recipe)}\nversion = {_toml(str(decision.version))}\n"
            f"vcs = {{ {vcs}, commit-id = {_toml(str(decision.commit))} }}\n"
        )
    return "".join(blocks)


def _explain(conflict: Conflict, stack_doc: Document[Stack], candidates: list[Candidates]) -> Conflict:
    """The resolver's explanation, with who asked for each package it names (file:line:column) and
    what builder offered it."""
    stack = stack_doc.model
    asked = []
    for item in candidates:
        if re.search(rf"\b{re.escape(item.recipe)}\b", conflict.message):
            offered = ", ".join(str(w.version) for w in item.wheels) or "no wheel"
            if item.sources:
                offered += f"; source builds {', '.join(s.version for s in item.sources)}"
            asked.append(
                f"{item.where.location()} asks for {item.package} {item.wanted or '(any version)'} (offered: {offered})"
            )
    for position, text in enumerate(stack.requirements):
        name = re.split(r"[\s<>=!~;\[(@]", text, maxsplit=1)[0]
        if re.search(rf"\b{re.escape(name)}\b", conflict.message):
            asked.append(f"{stack_doc.at('requirements', position, message='').location()} asks for {text}")
    return Conflict(conflict.message + ("; " + "; ".join(asked) if asked else ""))


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


def _validate_pylock(text: str) -> None:
    from packaging.pylock import Pylock, PylockValidationError

    try:
        Pylock.from_dict(read_toml(text))
    except PylockValidationError as exc:
        raise ToolFailed(f"uv wrote a pylock.toml that does not validate: {exc}") from None


# ---------------------------------------------------------------- source builds' own build requirements

ALWAYS_BUILT_WITH = ("setuptools", "wheel")  # what every builder stage installs besides the recipe's own


def resolve_build_requirements(
    catalogue: Catalogue, decisions: list[Decision], platform: TargetPlatform, upstreams: Upstreams
) -> dict[str, str]:
    """For each source build: the pylock text of its builder stage's build requirements (the
    recipe's `build_requires`, plus setuptools and wheel), resolved for the cell's platform from the
    default index, so the same lock always builds with the same tools."""
    locked = {}
    for decision in (d for d in decisions if d.kind == "source"):
        recipe = catalogue.recipes[decision.recipe].model
        source = next(step.source for step in recipe.obtain if step.source is not None)
        wanted = list(source.build_requires)
        named = {canonicalize_name(re.split(r"[\s<>=!~;\[(@]", text, maxsplit=1)[0]) for text in wanted}
        wanted += [name for name in ALWAYS_BUILT_WITH if canonicalize_name(name) not in named]
        with tempfile.TemporaryDirectory(prefix="builder-build-requires-") as scratch:
            work = Path(scratch)
            (work / "requirements.in").write_text("\n".join(wanted) + "\n")
            try:
                text = _compile(work, [], platform, upstreams, "requirements.in", {})
            except Conflict as conflict:
                raise Conflict(
                    f"the build requirements of {recipe.name} cannot be resolved: {conflict.message}"
                ) from None
        _validate_pylock(text)
        locked[decision.recipe] = text
    return locked
