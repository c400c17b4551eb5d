"""uv, the resolver: a whole environment for a target platform as a PEP 751 pylock.toml."""

from __future__ import annotations

import importlib
import re
import tempfile
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


def compile_pylock(
    requirements: list[str],
    overrides: list[str],
    *,
    uv_platform: str,
    python: str,
    cache_dir: Path,
    index_args: list[str],
    offline: bool,
) -> str:
    """The pylock.toml text uv resolves for `requirements` on the platform; raises Conflict when no
    environment exists, UpstreamUnavailable when an index cannot be read."""
    uv = uv_binary()
    with tempfile.TemporaryDirectory(prefix="builder-lock-") as scratch:
        directory = Path(scratch)
        (directory / "requirements.in").write_text("\n".join(requirements) + "\n")
        (directory / "overrides.txt").write_text("\n".join(overrides) + "\n")
        argv = [
            uv, "pip", "compile", "requirements.in",
            "--format", "pylock.toml", "--output-file", "pylock.toml",
            "--python-platform", uv_platform, "--python-version", python,
            "--override", "overrides.txt", "--no-header", "--no-config", "--no-python-downloads", "--quiet",
            "--cache-dir", str(cache_dir / "uv"),
            *index_args,
        ]  # fmt: skip
        if offline:
            argv.append("--offline")
        result = process.run(argv, cwd=directory, timeout=900)
        if result.returncode == 0:
            return (directory / "pylock.toml").read_text()
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
