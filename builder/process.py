"""The one door to subprocesses: argv in, exit code and output out, failures that name the tool.

`run` waits for a short command and keeps its output; `run_logged` streams a long one (an engine
build) into a log file with a heartbeat, tries known transient failures again, and stops the
command's whole process group when builder is interrupted.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from builder.errors import BuildFailed, UpstreamUnavailable

TAIL_LINES = 20
HEARTBEAT_SECONDS = 30

Progress = Callable[[str], None]


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
    """Run a command to completion; never raises for a non-zero exit (callers decide). The command
    gets its own process group and dies with builder: on Ctrl-C, SIGTERM or a timeout its whole
    group is stopped, and if builder itself is killed the kernel kills it (Linux)."""
    try:
        child = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=None if env is None else dict(env),
            stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # prctl only: safe between fork and exec
        )
    except FileNotFoundError:
        raise UpstreamUnavailable(f"tool '{argv[0]}' is not installed or not on PATH") from None
    try:
        stdout, stderr = child.communicate(input_text, timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_group(child)
        raise UpstreamUnavailable(f"'{' '.join(argv[:3])}' did not finish within {timeout:g} s") from None
    except BaseException:
        stop_group(child)
        raise
    return Completed(tuple(argv), child.returncode, stdout, stderr)


def _die_with_parent() -> None:
    """In the child, before exec: ask the kernel to SIGKILL it when builder dies (PR_SET_PDEATHSIG)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1


def run_logged(
    argv: list[str],
    env: Mapping[str, str],
    log: Path,
    title: str,
    progress: Progress,
    transient_failures: Sequence[str] = (),
    attempts: int = 3,
) -> float:
    """Run one long command with its whole output in `log`; a heartbeat line every 30 s.

    A failure whose new log lines name one of `transient_failures` is tried again, up to
    `attempts` times in all, with every try kept in the same log. Returns the seconds it took.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    log.unlink(missing_ok=True)
    started = time.monotonic()
    for attempt in range(1, attempts + 1):
        offset = log.stat().st_size if log.exists() else 0
        returncode = _run_once(argv, env, log, title, progress, started)
        if returncode == 0:
            return time.monotonic() - started
        tried = log.read_bytes()[offset:].decode(errors="replace")
        known = next((marker for marker in transient_failures if marker in tried), None)
        if known is None or attempt == attempts:
            break
        progress(
            f"{title}: the engine hit a known transient failure ({known}); trying again ({attempt + 1} of {attempts})"
        )
    raise BuildFailed(title, log, returncode)


def _run_once(
    argv: list[str], env: Mapping[str, str], log: Path, title: str, progress: Progress, started: float
) -> int:
    """The command gets its own session so that Ctrl-C reaches builder first, which then stops the
    command's process group (SIGINT, then SIGTERM, then SIGKILL) instead of leaving it running."""
    with log.open("ab") as output:
        output.write(f"$ {' '.join(argv)}\n".encode())
        output.flush()
        try:
            child = subprocess.Popen(
                argv,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=dict(env),
                start_new_session=True,
                preexec_fn=_die_with_parent,  # prctl only: safe between fork and exec
            )
        except FileNotFoundError:
            raise UpstreamUnavailable(f"tool '{argv[0]}' is not installed or not on PATH") from None
        try:
            while True:
                try:
                    return child.wait(timeout=HEARTBEAT_SECONDS)
                except subprocess.TimeoutExpired:
                    progress(f"{title}: still running after {time.monotonic() - started:.0f} s (log: {log})")
        except BaseException:
            stop_group(child)
            raise


def run_relayed(argv: list[str], log: Path, relay: Progress, env: Mapping[str, str] | None = None) -> int:
    """Run a long command whose own progress lines matter: each line of its output goes to `log` and
    to `relay` as it comes. Returns the exit code (callers decide); interrupts stop its group."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w", encoding="utf-8") as output:
        output.write(f"$ {' '.join(argv)}\n")
        try:
            child = subprocess.Popen(
                argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=None if env is None else dict(env),
                text=True,
                errors="replace",
                start_new_session=True,
                preexec_fn=_die_with_parent,  # prctl only: safe between fork and exec
            )
        except FileNotFoundError:
            raise UpstreamUnavailable(f"tool '{argv[0]}' is not installed or not on PATH") from None
        assert child.stdout is not None
        with child.stdout:
            try:
                for line in child.stdout:
                    output.write(line)
                    output.flush()
                    relay(line.rstrip("\n"))
                return child.wait()
            except BaseException:
                stop_group(child)
                raise


def stop_group(child: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    """SIGINT first (engines cancel their build), then SIGTERM and SIGKILL for whatever is left
    of the group: a shell's background jobs ignore SIGINT and would outlive the build."""
    for sig, grace in ((signal.SIGINT, 10.0), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=grace)
        time.sleep(0.2)
