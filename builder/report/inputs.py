"""What `build report` reads, each file named in its one-line error when it is not what builder
writes: out/<stack>/<target>/{result.json, builds.jsonl, smoke.json, verify.json}, the locks and
the rebuild benchmark's figures. A file that is not there is a fact the report shows ("not built",
"not run"), never an error."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from builder.catalogue.documents import Catalogue
from builder.errors import BadInputFile, BuilderError, FileProblem, display_path

RESULT = "result.json"
BUILDS = "builds.jsonl"  # builder.build.runner.BUILDS_LOG (not imported: it would load the engines)
SMOKE = "smoke.json"
VERIFY = "verify.json"  # `build verify IMAGE --key PUB --json > out/<stack>/<target>/verify.json`


@dataclass(frozen=True)
class LockState:
    path: str
    modified: datetime  # when image-lock.json was written (its modification time)
    checksum: str
    changes: tuple[str, ...]  # why it no longer matches the catalogue; empty when fresh


@dataclass(frozen=True)
class TargetInputs:
    stack: str
    target: str
    directory: Path
    result: dict[str, Any] | None = None
    builds: list[dict[str, Any]] = field(default_factory=list)
    smoke: dict[str, Any] | None = None
    verify: dict[str, Any] | None = None
    lock: LockState | None = None
    lock_problem: str | None = None  # a lock that is there but cannot be read (corrupt, edited)
    dockerfile: str | None = None  # the rendered Dockerfile the image was built from


def _text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as error:
        raise BadInputFile(path, f"not UTF-8 text (byte {error.start})") from None
    except OSError as error:
        raise FileProblem(error) from None


def _parse(path: Path, text: str, line_offset: int = 0) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise BadInputFile(path, f"not JSON: {error.msg}", error.lineno + line_offset, error.colno) from None


def read_json(path: Path, *, required: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """A JSON object builder wrote, or None when the file is not there."""
    text = _text(path)
    if text is None:
        return None
    data = _parse(path, text)
    if not isinstance(data, dict):
        raise BadInputFile(path, f"expected a JSON object, found {type(data).__name__}")
    missing = [key for key in required if key not in data]
    if missing:
        raise BadInputFile(path, f"has no '{missing[0]}' (not written by this builder?)")
    return data


def read_builds(path: Path) -> list[dict[str, Any]]:
    """Every build recorded in builds.jsonl, oldest first."""
    text = _text(path)
    builds = []
    for number, line in enumerate((text or "").splitlines(), start=1):
        if not line.strip():
            continue
        build = _parse(path, line, number - 1)
        if not isinstance(build, dict) or not isinstance(build.get("stages"), list):
            raise BadInputFile(path, "expected a build with its stages on every line", number)
        builds.append(build)
    return builds


def read_lock_state(
    catalogue: Catalogue, lock_dir: Path, stack: str, target: str
) -> tuple[LockState | None, str | None]:
    """The lock's age and freshness against the catalogue as it is now; (None, None) when there is
    no lock, (None, why) when there is one that cannot be read."""
    from builder.lock.inputs import input_checksums
    from builder.lock.model import changes, read_lock
    from builder.lock.paths import lock_paths

    paths = lock_paths(lock_dir, stack, target)
    if not paths.exists():
        return None, None
    try:
        lock = read_lock(paths)
    except BuilderError as error:
        return None, error.message
    found = changes(lock, input_checksums(catalogue, catalogue.stack(stack).model, target))
    modified = datetime.fromtimestamp(paths.image_lock.stat().st_mtime, timezone.utc)
    return LockState(display_path(paths.image_lock), modified, lock.checksum, tuple(found)), None


def read_target(catalogue: Catalogue, results_dir: Path, lock_dir: Path, stack: str, target: str) -> TargetInputs:
    directory = results_dir / stack / target
    result = read_json(directory / RESULT, required=("image", "sizes", "stages", "finished"))
    dockerfile = None
    if result is not None and isinstance(result.get("context"), str):
        dockerfile = _text(Path(result["context"]) / "Dockerfile")
    builds = read_builds(directory / BUILDS)
    if not builds and result is not None:  # built before builds.jsonl was kept
        builds = [result]
    lock, problem = read_lock_state(catalogue, lock_dir, stack, target)
    return TargetInputs(
        stack=stack,
        target=target,
        directory=directory,
        result=result,
        builds=builds,
        smoke=read_json(directory / SMOKE, required=("checks", "summary")),
        verify=read_json(directory / VERIFY, required=("ok", "checks")),
        lock=lock,
        lock_problem=problem,
        dockerfile=dockerfile,
    )


def read_benchmark(path: Path) -> dict[str, Any]:
    """The rebuild benchmark's figures (`python benchmarks/rebuild.py --json FILE`)."""
    data = read_json(path, required=("target", "measured", "seconds", "above_base_bytes", "total_bytes"))
    if data is None:
        raise BadInputFile(path, "no such file")
    for key in ("above_base_bytes", "total_bytes"):
        sizes = data[key]
        if not isinstance(sizes, dict) or not all(
            isinstance(sizes.get(tool), int) for tool in ("build stack", "naive")
        ):
            raise BadInputFile(path, f"'{key}' needs integer 'build stack' and 'naive' sizes")
    return data
