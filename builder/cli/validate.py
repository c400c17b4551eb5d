"""`build validate`: check every YAML file of the catalogue."""

from __future__ import annotations

import argparse
import sys

from builder.cli.settings import Common, print_json
from builder.errors import EXIT_OK
from builder.validate import load_catalogue


def settings(args: argparse.Namespace) -> Common:
    return Common.of(args)


def run(settings: Common) -> int:
    catalogue = load_catalogue(settings.root)
    counts = {
        "devices": len(catalogue.devices),
        "cells": len(catalogue.cells),
        "recipes": len(catalogue.recipes),
        "stacks": len(catalogue.stacks),
    }
    if settings.json:
        print_json({"ok": True, **counts})
    else:
        sys.stdout.write(f"ok: {', '.join(f'{count} {kind}' for kind, count in counts.items())}\n")
    return EXIT_OK
