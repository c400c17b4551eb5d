"""`build show STACK`: a human summary of a stack, or `--json`."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from builder.cli.settings import Common, print_json
from builder.cli.views import stack_json, stack_text
from builder.errors import EXIT_OK
from builder.validate import load_catalogue


@dataclass(frozen=True)
class ShowSettings:
    common: Common
    stack: str


def settings(args: argparse.Namespace) -> ShowSettings:
    return ShowSettings(Common.of(args), args.stack)


def run(settings: ShowSettings) -> int:
    catalogue = load_catalogue(settings.common.root)
    if settings.common.json:
        print_json(stack_json(catalogue, settings.stack))
    else:
        sys.stdout.write(stack_text(catalogue, settings.stack))
    return EXIT_OK
