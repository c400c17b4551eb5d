"""`build schema`: write the JSON Schemas of the catalogue files."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from builder.catalogue.schema import write_schemas
from builder.cli.settings import Common
from builder.errors import EXIT_OK, display_path


@dataclass(frozen=True)
class SchemaSettings:
    out: Path


def settings(args: argparse.Namespace) -> SchemaSettings:
    return SchemaSettings(args.out if args.out is not None else Common.of(args).root / "schemas")


def run(settings: SchemaSettings) -> int:
    for path in write_schemas(settings.out):
        sys.stdout.write(f"wrote {display_path(path)}\n")
    return EXIT_OK
