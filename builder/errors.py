"""One error tree. Library code raises these; only the CLI formats them and exits.

Every class carries its exit code. Callers decide on types and typed fields, never on message text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

EXIT_OK = 0
EXIT_CHECK_FAILED = 1  # a check failed: verify, smoke, `lock --check`, a stale or tampered lock
EXIT_BAD_INPUT = 2  # the user's input is wrong: a flag, a catalogue file, an unsatisfiable request
EXIT_UNAVAILABLE = 3  # an upstream, tool, engine or the filesystem is unavailable or misbehaves
EXIT_INTERNAL = 70  # a bug in builder itself (EX_SOFTWARE)
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM


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


# ---------------------------------------------------------------- bad input (exit 2)


class UsageError(BuilderError):
    """The command line itself is wrong (unknown stack, bad flag value)."""


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One problem in one input file, at a 1-based line and column."""

    path: Path
    line: int
    column: int
    message: str

    def location(self, relative_to: Path | None = None) -> str:
        return f"{display_path(self.path, relative_to)}:{self.line}:{self.column}"

    def render(self, relative_to: Path | None = None) -> str:
        return one_line(f"{self.location(relative_to)}: error: {self.message}")


class InvalidCatalogue(BuilderError):
    """Every problem found in the catalogue, reported at once."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = sorted(set(diagnostics))
        count = len(self.diagnostics)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} in the catalogue")

    def lines(self) -> list[str]:
        return [d.render() for d in self.diagnostics]


class Unsatisfiable(BuilderError):
    """Nothing can serve a package on a cell; the lines point at who asked for it."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        super().__init__(diagnostics[0].message)
        self.diagnostics = diagnostics

    def lines(self) -> list[str]:
        return [diagnostic.render() for diagnostic in self.diagnostics]


class Conflict(BuilderError):
    """The resolver found no environment that satisfies every requirement."""


class PlanError(BuilderError):
    """The plan cannot be made (e.g. a source build cannot fit in the build memory)."""


class BadInputFile(BuilderError):
    """A file builder reads back (result.json, smoke.json, a benchmark's figures) is not what builder
    writes: `path:line:col: error: message`, as a catalogue problem is shown."""

    def __init__(self, path: Path, message: str, line: int = 1, column: int = 1) -> None:
        self.diagnostic = Diagnostic(path, line, column, message)
        super().__init__(self.diagnostic.render())

    def lines(self) -> list[str]:
        return [self.diagnostic.render()]


# ---------------------------------------------------------------- a check failed (exit 1)


class CheckFailed(BuilderError):
    exit_code = EXIT_CHECK_FAILED


class Drift(CheckFailed):
    """A lock no longer matches what it was made from; one line per change."""

    def __init__(self, where: str, changes: list[str], *, hint: str | None = None) -> None:
        super().__init__(f"{where} is out of date", hint=hint)
        self.changes = changes

    def lines(self) -> list[str]:
        lines = [f"error: {self.message}: {change}" for change in self.changes]
        if self.hint is not None:
            lines[-1] += f" (hint: {self.hint})"
        return [one_line(line) for line in lines]


class SbomIncomplete(CheckFailed):
    """Locked packages that syft did not find in the image; one line per package."""

    def __init__(self, image: str, lock: str, missing: list[str]) -> None:
        count = len(missing)
        super().__init__(f"{image}: {count} locked package{'s' if count != 1 else ''} of {lock} not in the image")
        self.image = image
        self.missing = missing

    def lines(self) -> list[str]:
        return [one_line(f"error: {self.image}: the lock's {item} is not in the image") for item in self.missing]


class BuildFailed(CheckFailed):
    """An engine step failed: say which, where its whole log is, and the end of that log."""

    TAIL_LINES = 20

    def __init__(self, title: str, log: Path, returncode: int) -> None:
        super().__init__(f"{title} failed (exit {returncode}); full log: {log}")
        self.log = log

    def lines(self) -> list[str]:
        try:
            tail = self.log.read_text(errors="replace").splitlines()[-self.TAIL_LINES :]
        except OSError:
            tail = []
        return [one_line(f"error: {self.message}"), *(one_line(f"  | {line}") for line in tail)]


# ---------------------------------------------------------------- unavailable (exit 3)


class UpstreamUnavailable(BuilderError):
    """An index, registry, git server or tool cannot be reached or used."""

    exit_code = EXIT_UNAVAILABLE


class HttpError(UpstreamUnavailable):
    """A request failed; `retryable` says whether sending it again may help (a body cut short)."""

    def __init__(self, url: str, message: str, status: int | None = None, *, retryable: bool = False) -> None:
        super().__init__(f"{url}: {message}")
        self.url = url
        self.status = status
        self.retryable = retryable


class ToolFailed(UpstreamUnavailable):
    """A tool or engine ran but misbehaved (wrote something invalid, reported nothing)."""


class FileProblem(BuilderError):
    """The filesystem refused an operation: the path and the system's reason, not "bad input"."""

    exit_code = EXIT_UNAVAILABLE

    def __init__(self, error: OSError) -> None:
        where = f" {error.filename}:" if error.filename else ""
        super().__init__(f"{where.strip()} {error.strerror or error}".strip())


# ---------------------------------------------------------------- builder's own fault (exit 70)


class InternalError(BuilderError):
    """An inconsistency builder should never reach: a bug to report."""

    exit_code = EXIT_INTERNAL


def display_path(path: Path, relative_to: Path | None = None) -> str:
    """A path as a user should read it: relative to the working directory when inside it."""
    base = relative_to if relative_to is not None else Path.cwd()
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path)


# user:password@ in a URL; the password is never shown (the user is).
_CREDENTIAL = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^/:@\s]*):(?P<password>[^/@\s]+)@")


def redact(text: str) -> str:
    """`text` with every password inside a URL replaced by ***."""
    return _CREDENTIAL.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)


def one_line(text: str) -> str:
    """Escape anything that would break a message's one line (newlines and other control characters);
    passwords inside URLs are never shown."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in redact(text))
