"""The one door to subprocesses: argv in, exit code and output out, failures that name the tool.

`run` waits for a short command and keeps its output; `run_logged` streams a long one (an engine
build) into a log file with a heartbeat, tries known transient failures again, and stops the
command's whole process group when builder is interrupted; `run_logged_together` does the same for
several at once (the source builds of one wave), from this one thread.
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


@dataclass(frozen=True)
class LoggedCommand:
    """One long command (an engine build or pull) with its whole output kept in `log`."""

    argv: Sequence[str]
    env: Mapping[str, str]
    log: Path
    title: str
    transient_failures: Sequence[str] = ()
    cwd: Path | None = None


@dataclass(frozen=True)
class Ran:
    """When a command ran (time.monotonic() values, retries included) and how it ended."""

    title: str
    started: float
    finished: float
    failure: BuildFailed | None = None

    @property
    def seconds(self) -> float:
        return self.finished - self.started


def run_logged(
    argv: list[str],
    env: Mapping[str, str],
    log: Path,
    title: str,
    progress: Progress,
    transient_failures: Sequence[str] = (),
    attempts: int = 3,
    cwd: Path | None = None,
) -> float:
    """Run one long command with its whole output in `log`; a heartbeat line every 30 s.

    A failure whose new log lines name one of `transient_failures` is tried again, up to
    `attempts` times in all, with every try kept in the same log. Returns the seconds it took.
    """
    command = LoggedCommand(argv, env, log, title, transient_failures, cwd)
    ran = run_logged_together([command], progress, attempts)[0]
    if ran.failure is not None:
        raise ran.failure
    return ran.seconds


@dataclass
class _Try:
    command: LoggedCommand
    number: int
    child: subprocess.Popen[bytes]
    offset: int  # where this try's lines start in the log


def run_logged_together(commands: Sequence[LoggedCommand], progress: Progress, attempts: int = 3) -> list[Ran]:
    """Run long commands at the same time, each as `run_logged` runs one, and wait for all of them.

    Failures are returned, not raised: the commands that succeeded keep what they made (a source
    build that took an hour is not thrown away because its neighbour failed). Every child is
    started and waited for from this thread, so Ctrl-C reaches builder here and stops every
    command's process group.
    """
    started = {index: time.monotonic() for index in range(len(commands))}
    running: dict[int, _Try] = {}
    ran: dict[int, Ran] = {}
    try:
        for index, command in enumerate(commands):
            command.log.parent.mkdir(parents=True, exist_ok=True)
            command.log.unlink(missing_ok=True)
            running[index] = _start(command, 1)
        heartbeat = time.monotonic() + HEARTBEAT_SECONDS
        while running:
            _wait_for_one(running, heartbeat)
            for index, attempt in list(running.items()):
                returncode = attempt.child.poll()
                if returncode is None:
                    continue
                del running[index]
                retry = _next_try(attempt, returncode, attempts, progress)
                if retry is not None:
                    running[index] = retry
                    continue
                failure = (
                    None if returncode == 0 else BuildFailed(attempt.command.title, attempt.command.log, returncode)
                )
                ran[index] = Ran(attempt.command.title, started[index], time.monotonic(), failure)
            if time.monotonic() >= heartbeat:
                heartbeat += HEARTBEAT_SECONDS
                for index, attempt in running.items():
                    elapsed = time.monotonic() - started[index]
                    progress(
                        f"{attempt.command.title}: still running after {elapsed:.0f} s (log: {attempt.command.log})"
                    )
    except BaseException:
        stop_groups([attempt.child for attempt in running.values()])
        raise
    return [ran[index] for index in range(len(commands))]


def _start(command: LoggedCommand, number: int) -> _Try:
    """Start one try. The command gets its own session so that Ctrl-C reaches builder first, which
    then stops the command's process group (SIGINT, then SIGTERM, then SIGKILL) instead of leaving
    it running."""
    offset = command.log.stat().st_size if command.log.exists() else 0
    with command.log.open("ab") as output:
        output.write(f"$ {' '.join(command.argv)}\n".encode())
        output.flush()
        try:
            child = subprocess.Popen(
                list(command.argv),
                stdout=output,
                stderr=subprocess.STDOUT,
                env=dict(command.env),
                cwd=command.cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # prctl only: safe between fork and exec
            )
        except FileNotFoundError:
            raise UpstreamUnavailable(f"tool '{command.argv[0]}' is not installed or not on PATH") from None
    return _Try(command, number, child, offset)


def _wait_for_one(running: dict[int, _Try], heartbeat: float) -> None:
    """Block until a command may have ended: on the only one until the next heartbeat, else briefly
    on the first (the others are polled after it)."""
    timeout = max(heartbeat - time.monotonic(), 0.0) if len(running) == 1 else 0.1
    first = next(iter(running.values()))
    with contextlib.suppress(subprocess.TimeoutExpired):
        first.child.wait(timeout=timeout)


def _next_try(attempt: _Try, returncode: int, attempts: int, progress: Progress) -> _Try | None:
    """Another try when the failure is one the engine gets past on a second try."""
    if returncode == 0 or attempt.number >= attempts:
        return None
    command = attempt.command
    tried = command.log.read_bytes()[attempt.offset :].decode(errors="replace")
    known = next((marker for marker in command.transient_failures if marker in tried), None)
    if known is None:
        return None
    progress(
        f"{command.title}: the engine hit a known transient failure ({known}); "
        f"trying again ({attempt.number + 1} of {attempts})"
    )
    return _start(command, attempt.number + 1)


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
    stop_groups([child])


def stop_groups(children: Sequence[subprocess.Popen[bytes] | subprocess.Popen[str]]) -> None:
    """SIGINT first (engines cancel their build), then SIGTERM and SIGKILL for whatever is left
    of each group: a shell's background jobs ignore SIGINT and would outlive the build."""
    for sig, grace in ((signal.SIGINT, 10.0), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        alive = []
        for child in children:
            try:
                os.killpg(child.pid, sig)
            except ProcessLookupError:
                continue
            alive.append(child)
        if not alive:
            return
        deadline = time.monotonic() + grace
        for child in alive:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=max(deadline - time.monotonic(), 0.0))
        time.sleep(0.2)
