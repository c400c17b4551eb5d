"""`build validate`: check every YAML file of the catalogue."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from builder.cli import memoized
from builder.cli.settings import Common
from builder.errors import EXIT_OK

if TYPE_CHECKING:
    from builder.catalogue.documents import Catalogue


def settings(args: argparse.Namespace) -> Common:
    return Common.of(args)


def run(settings: Common) -> int:
    words = ["validate", repr(settings.json)]
    sys.stdout.write(memoized.output("validate", settings.root, words, [], lambda: _validate(settings)))
    return EXIT_OK


def _validate(settings: Common) -> tuple[str, Catalogue]:
    from builder.validate import load_catalogue

    catalogue = load_catalogue(settings.root)
    counts = {
        "devices": len(catalogue.devices),
        "cells": len(catalogue.cells),
        "recipes": len(catalogue.recipes),
        "stacks": len(catalogue.stacks),
    }
    if settings.json:
        return json.dumps({"ok": True, **counts}, indent=2) + "\n", catalogue
    return f"ok: {', '.join(f'{count} {kind}' for kind, count in counts.items())}\n", catalogue
