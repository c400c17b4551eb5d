"""`build show STACK`: a human summary of a stack, or `--json`."""

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
class ShowSettings:
    common: Common
    stack: str


def settings(args: argparse.Namespace) -> ShowSettings:
    return ShowSettings(Common.of(args), args.stack)


def run(settings: ShowSettings) -> int:
    words = ["show", settings.stack, repr(settings.common.json)]
    sys.stdout.write(memoized.output("show", settings.common.root, words, [], lambda: _show(settings)))
    return EXIT_OK


def _show(settings: ShowSettings) -> tuple[str, Catalogue]:
    from builder.cli.views import stack_json, stack_text
    from builder.validate import load_catalogue

    catalogue = load_catalogue(settings.common.root)
    if settings.common.json:
        return json.dumps(stack_json(catalogue, settings.stack), indent=2) + "\n", catalogue
    return stack_text(catalogue, settings.stack), catalogue
