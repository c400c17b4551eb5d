"""`build matrix`: list cells per stack; `--json` is a GitHub Actions matrix."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from builder.cli.settings import Common, print_json
from builder.cli.views import matrix_rows, matrix_text
from builder.errors import EXIT_OK
from builder.validate import load_catalogue


@dataclass(frozen=True)
class MatrixSettings:
    common: Common
    stack: str | None


def settings(args: argparse.Namespace) -> MatrixSettings:
    return MatrixSettings(Common.of(args), args.stack)


def run(settings: MatrixSettings) -> int:
    catalogue = load_catalogue(settings.common.root)
    if settings.common.json:
        print_json({"include": matrix_rows(catalogue, settings.stack)})
    else:
        sys.stdout.write(matrix_text(catalogue, settings.stack))
    return EXIT_OK
