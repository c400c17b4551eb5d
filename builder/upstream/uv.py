"""uv, the resolver: a whole environment for a target platform as a PEP 751 pylock.toml."""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path

from builder import process
from builder.errors import Conflict, UpstreamUnavailable

UV_NO_SOLUTION = 1  # uv's exit code when resolution fails; network and other errors exit 2


def uv_binary() -> str:
    """The uv binary: the one installed with builder's dependencies, else one on PATH."""
    try:
        return str(importlib.import_module("uv").find_uv_bin())
    except (ImportError, FileNotFoundError, AttributeError):
        return process.require_tool("uv", "pip install uv")


def compile_environment(
    work: Path,
    overrides: list[str],
    *,
    uv_platform: str,
    python: str,
    cache_dir: Path,
    find_links: list[str],
    offline: bool,
    netrc: Path | None,
    source: str = "pyproject.toml",
    constraints: list[str] | None = None,
    index_args: list[str] | None = None,
) -> str:
    """The pylock.toml text uv resolves for `work/source` (a project, or requirements) on the platform.

    Raises Conflict when no environment exists, UpstreamUnavailable when an index or a download
    fails. `netrc` carries index credentials; nothing else does.
    """
    (work / "overrides.txt").write_text("\n".join(overrides) + "\n")
    argv = [
        uv_binary(), "pip", "compile", source,
        "--format", "pylock.toml", "--output-file", "pylock.toml",
        "--python-platform", uv_platform, "--python-version", python,
        "--override", "overrides.txt", "--no-header", "--no-config", "--no-python-downloads", "--quiet",
        "--cache-dir", str(cache_dir / "uv"),
        *(index_args or []),
    ]  # fmt: skip
    if constraints:
        (work / "constraints.txt").write_text("\n".join(constraints) + "\n")
        argv += ["--constraint", "constraints.txt"]
    for link in find_links:
        argv += ["--find-links", link]
    if offline:
        argv.append("--offline")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("UV_", "PIP_"))}
    if netrc is not None:
        env["NETRC"] = str(netrc)
    result = process.run(argv, cwd=work, env=env, timeout=900)
    if result.returncode == 0:
        return (work / "pylock.toml").read_text()
    text = _one_line(result.stderr)
    if result.returncode != UV_NO_SOLUTION:
        raise UpstreamUnavailable(f"uv could not resolve (exit {result.returncode}): {text}")
    if offline:  # uv cannot tell a package missing from its cache from one that does not exist
        raise UpstreamUnavailable(f"uv found no environment from its cache (--offline): {text}")
    raise Conflict(f"no environment satisfies every requirement: {text}")


def _one_line(stderr: str) -> str:
    lines = [line.strip(" \u00d7\u2570\u2500\u25b6") for line in stderr.strip().splitlines() if line.strip()]
    text = " ".join(line for line in lines if not line.startswith("hint:"))
    return re.sub(r"\s+", " ", text).replace("error: ", "")
