"""`build matrix`: list cells per stack; `--json` is a GitHub Actions matrix."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from builder.cli import memoized
from builder.cli.settings import Common
from builder.errors import EXIT_OK

if TYPE_CHECKING:
    from builder.catalogue.documents import Catalogue


@dataclass(frozen=True)
class MatrixSettings:
    common: Common
    stack: str | None


def settings(args: argparse.Namespace) -> MatrixSettings:
    return MatrixSettings(Common.of(args), args.stack)


def run(settings: MatrixSettings) -> int:
    words = ["matrix", repr(settings.stack), repr(settings.common.json)]
    sys.stdout.write(memoized.output("matrix", settings.common.root, words, [], lambda: _matrix(settings)))
    return EXIT_OK


def _matrix(settings: MatrixSettings) -> tuple[str, Catalogue]:
    from builder.cli.views import matrix_rows, matrix_text
    from builder.validate import load_catalogue

    catalogue = load_catalogue(settings.common.root)
    if settings.common.json:
        return json.dumps({"include": matrix_rows(catalogue, settings.stack)}, indent=2) + "\n", catalogue
    return matrix_text(catalogue, settings.stack), catalogue
