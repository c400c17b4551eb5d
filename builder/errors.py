"""One error tree. Library code raises these; only the CLI formats them and exits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_UNAVAILABLE = 3
EXIT_INTERNAL = 70  # a bug in builder itself


class BuilderError(Exception):
    """Root of every error the tool reports to a user."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def lines(self) -> list[str]:
        text = f"error: {self.message}"
        return [one_line(text if self.hint is None else f"{text} (hint: {self.hint})")]


class UsageError(BuilderError):
    """The command line itself is wrong (unknown stack, bad flag value)."""


class CheckFailed(BuilderError):
    exit_code = EXIT_CHECK_FAILED


class UpstreamUnavailable(BuilderError):
    exit_code = EXIT_UNAVAILABLE


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One problem in one input file, at a 1-based line and column."""

    path: Path
    line: int
    column: int
    message: str

    def render(self, relative_to: Path | None = None) -> str:
        text = f"{display_path(self.path, relative_to)}:{self.line}:{self.column}: error: {self.message}"
        return one_line(text)


class InvalidCatalogue(BuilderError):
    """Every problem found in the catalogue, reported at once."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = sorted(set(diagnostics))
        count = len(self.diagnostics)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} in the catalogue")

    def lines(self) -> list[str]:
        return [d.render() for d in self.diagnostics]


def display_path(path: Path, relative_to: Path | None = None) -> str:
    """A path as a user should read it: relative to the working directory when inside it."""
    base = relative_to if relative_to is not None else Path.cwd()
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path)


def one_line(text: str) -> str:
    """Escape anything that would break a message's one line (newlines and other control characters)."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)
