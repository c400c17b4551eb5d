"""The one door to subprocesses: argv in, exit code and output out, failures that name the tool."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from builder.errors import UpstreamUnavailable

TAIL_LINES = 20


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def tail(self) -> str:
        lines = (self.stderr or self.stdout).strip().splitlines()
        return " | ".join(line.strip() for line in lines[-TAIL_LINES:] if line.strip())


def require_tool(name: str, hint: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise UpstreamUnavailable(f"tool '{name}' is not installed or not on PATH", hint=hint)
    return path


def run(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 600,
    input_text: str | None = None,
) -> Completed:
    """Run a command to completion; never raises for a non-zero exit (callers decide)."""
    try:
        result = subprocess.run(
            list(argv),
            cwd=cwd,
            env=None if env is None else dict(env),
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        raise UpstreamUnavailable(f"tool '{argv[0]}' is not installed or not on PATH") from None
    except subprocess.TimeoutExpired:
        raise UpstreamUnavailable(f"'{' '.join(argv[:3])}' did not finish within {timeout:g} s") from None
    return Completed(tuple(argv), result.returncode, result.stdout, result.stderr)
