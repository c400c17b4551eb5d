"""Progress for long work, injected into the library: plain lines, GitHub Actions groups, or rich."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Protocol, TextIO


class Reporter(Protocol):
    def step(self, message: str) -> None: ...

    @contextmanager
    def group(self, title: str) -> Iterator[None]: ...


class PlainReporter:
    """One line per step; groups open and close with their duration."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def _write(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()

    def step(self, message: str) -> None:
        self._write(message)

    @contextmanager
    def group(self, title: str) -> Iterator[None]:
        started = time.monotonic()
        self._write(f"== {title}")
        try:
            yield
        except BaseException:
            self._write(f"== {title}: failed after {time.monotonic() - started:.1f} s")
            raise
        self._write(f"== {title}: done in {time.monotonic() - started:.1f} s")


class GithubReporter(PlainReporter):
    """GitHub Actions folds everything between ::group:: and ::endgroup:: in its log view."""

    @contextmanager
    def group(self, title: str) -> Iterator[None]:
        started = time.monotonic()
        self._write(f"::group::{title}")
        try:
            yield
        except BaseException:
            self._write("::endgroup::")
            self._write(f"::error::{title} failed after {time.monotonic() - started:.1f} s")
            raise
        self._write("::endgroup::")
        self._write(f"{title}: done in {time.monotonic() - started:.1f} s")


class RichReporter(PlainReporter):
    """A spinner with the group's title and elapsed time on a terminal."""

    @contextmanager
    def group(self, title: str) -> Iterator[None]:
        from rich.console import Console

        console = Console(file=self.stream)
        started = time.monotonic()
        with console.status(title):
            try:
                yield
            except BaseException:
                console.print(f"[red]x[/red] {title} (failed after {time.monotonic() - started:.1f} s)")
                raise
        console.print(f"[green]ok[/green] {title} ({time.monotonic() - started:.1f} s)")


def make_reporter(stream: TextIO, environ: Mapping[str, str] | None = None) -> Reporter:
    environ = os.environ if environ is None else environ
    if environ.get("GITHUB_ACTIONS") == "true":
        return GithubReporter(stream)
    if stream.isatty() and environ.get("TERM") != "dumb":
        return RichReporter(stream)
    return PlainReporter(stream)
