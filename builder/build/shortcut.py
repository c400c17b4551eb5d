"""The no-op `build stack`, without reading the catalogue: a memo from the command's words and the
bytes of every file the last build was made from (catalogue, site SBOM settings, locks, app files)
to the content key each target's image got. With nothing changed, the images recorded in each
target's result.json are checked where they live (and their SBOMs and signature beside them), and
the results are written again, marked as the fast path. Anything that does not hold is a miss, and
the full path decides (it computes the content key from the rendered context).

Imports only the standard library and builder's light modules until a registry must be asked.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from builder import memo
from builder.build import fastpath
from builder.catalogue.content import catalogue_files
from builder.errors import BuilderError
from builder.fsutil import write_atomic

KIND = "stack"
Progress = Callable[[str], None]


def _key(root: Path, words: Sequence[str]) -> str:
    site = [root / name for name in fastpath.SITE_FILES]
    return memo.key(memo.code_digest(), [str(root), str(root.resolve()), *words], [*catalogue_files(root), *site])


def _digest(path: Path) -> str | None:
    try:
        return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def record(root: Path, words: Sequence[str], results: list[dict[str, Any]], skipped: list[dict[str, str]],
           inputs: Sequence[Path]) -> None:  # fmt: skip
    """Keep what a full `build stack` found, for the next run with the same words."""
    entry = {
        "targets": [
            {"target": r["target"], "result": str(Path(r["context"]).parent), "content-key": r["content-key"]}
            for r in results
        ],
        "skipped": skipped,
        "files": {str(path): _digest(path) for path in sorted(set(inputs))},
    }
    memo.put(KIND, _key(root, words), json.dumps(entry).encode())


def fast_results(
    root: Path,
    words: Sequence[str],
    *,
    insecure: bool,
    key_hint: str | None,
    progress: Progress,
) -> tuple[list[dict[str, Any]], list[dict[str, str]]] | None:
    """Every target's result, written again as the fast path, when nothing changed since the
    recorded build and its image and proofs are still where it left them; None otherwise."""
    kept = memo.get(KIND, _key(root, words))
    if kept is None:
        return None
    try:
        entry = json.loads(kept)
        if any(_digest(Path(path)) != digest for path, digest in entry["files"].items()):
            return None
        targets, skipped = entry["targets"], entry["skipped"]
    except (ValueError, KeyError, TypeError):
        return None
    if not targets or not _still_skipped(skipped):
        return None
    try:
        previous = [_reusable(Path(t["result"]), t["content-key"], root, insecure, key_hint) for t in targets]
    except BuilderError:
        return None  # the full path says what is wrong, with its usual errors
    if any(p is None for p in previous):
        return None
    results = []
    for found in previous:
        assert found is not None
        started, on = time.monotonic(), fastpath.utc_now()
        progress(fastpath.fast_path_line(found))
        result = _fast(found, on, time.monotonic() - started)
        write_atomic(Path(found["context"]).parent / "result.json", json.dumps(result, indent=2) + "\n")
        results.append(result)
    return results, skipped


def _still_skipped(skipped: list[dict[str, str]]) -> bool:
    """The targets skipped last time are skipped for the same reason now (an emulator installed since
    means they can be built)."""
    if not skipped:
        return True
    from builder.build.engines import emulation_problem, host_arch

    return all(s.get("arch") and emulation_problem(s["arch"], host_arch()) == s["reason"] for s in skipped)


def _reusable(directory: Path, key: str, root: Path, insecure: bool, key_hint: str | None) -> dict[str, Any] | None:
    previous = fastpath.read_result(directory)
    if previous is None or previous.get("content-key") != key:
        return None
    digest = previous["image"]["digest"]
    if (
        fastpath.reusable_sbom(
            previous, fastpath.sbom_key(digest, previous["lock-checksum"], fastpath.site_files(root))
        )
        is None
    ):
        return None
    in_registry = previous["image"]["stored"] == "registry"
    if key_hint is not None and not in_registry:
        return None  # signing needs --push; the full path says so
    http = None
    if in_registry:  # an OCI layout is checked on disk: no network code is loaded
        from builder.upstream.http import HttpClient

        http = HttpClient()
    try:
        if fastpath.image_missing(previous, key, http, insecure=insecure) is not None:
            return None
        if key_hint is not None and not _signed(previous, digest, key_hint, http, insecure):
            return None
    finally:
        if http is not None:
            http.close()
    if key_hint is None:
        previous = {k: v for k, v in previous.items() if k not in ("signature", "attestations")}
    return previous


def _signed(previous: dict[str, Any], digest: str, key_hint: str, http: Any, insecure: bool) -> bool:
    from dataclasses import replace

    from builder.upstream.images import open_store, parse_image

    if previous["image"]["stored"] != "registry":
        return False
    store = open_store(replace(parse_image(previous["image"]["reference"]), insecure=insecure), http)
    return fastpath.reusable_signature(previous, digest, key_hint, store)


def _fast(previous: dict[str, Any], on: str, seconds: float) -> dict[str, Any]:
    result = fastpath.fast_result(previous, on, seconds)
    for kind in ("sbom", "signature"):
        if kind in previous:
            result[kind] = previous[kind]
    if "attestations" in previous:
        result["attestations"] = [{**a, "added": False} for a in previous["attestations"]]
    if "signature" in result:
        result["signature"] = {**result["signature"], "added": False}
    return result
