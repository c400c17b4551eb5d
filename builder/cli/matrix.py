"""`build matrix`: list cells per stack; `--json` is a GitHub Actions matrix."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from builder.cli import memoized
from builder.cli.settings import Common
from builder.errors import EXIT_OK, UsageError

if TYPE_CHECKING:
    from builder.catalogue.documents import Catalogue


@dataclass(frozen=True)
class MatrixSettings:
    common: Common
    stacks: tuple[str, ...]
    changed: Path | None  # a file listing changed paths; None: every cell


def settings(args: argparse.Namespace) -> MatrixSettings:
    return MatrixSettings(Common.of(args), tuple(args.stack), args.changed)


def changed_paths(listing: Path | None) -> tuple[Path, ...] | None:
    """The paths a `--changed` file lists (relative ones from the current directory, as `git diff
    --name-only` prints them at the repository's top), absolute."""
    if listing is None:
        return None
    try:
        text = listing.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"--changed {listing}: no such file") from None
    except UnicodeDecodeError as error:
        raise UsageError(f"--changed {listing}: not UTF-8 text ({error.reason})") from None
    return tuple(sorted({(Path.cwd() / line.strip()).resolve() for line in text.splitlines() if line.strip()}))


def run(settings: MatrixSettings) -> int:
    changed = changed_paths(settings.changed)
    words = ["matrix", repr(settings.stacks), repr(changed and [str(path) for path in changed])]
    words.append(repr(settings.common.json))
    text = memoized.output("matrix", settings.common.root, words, [], lambda: _matrix(settings, changed))
    sys.stdout.write(text)
    return EXIT_OK


def _matrix(settings: MatrixSettings, changed: tuple[Path, ...] | None) -> tuple[str, Catalogue]:
    from builder.cli.views import matrix_rows, matrix_text
    from builder.validate import load_catalogue

    catalogue = load_catalogue(settings.common.root)
    if settings.common.json:
        rows = matrix_rows(catalogue, settings.stacks, changed)
        return json.dumps({"include": rows}, indent=2) + "\n", catalogue
    return matrix_text(catalogue, settings.stacks, changed), catalogue
