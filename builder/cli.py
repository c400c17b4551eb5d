"""The `build` command line: parses arguments, calls the library, formats errors and exits."""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from builder import __version__
from builder.catalogue import Catalogue, load_catalogue
from builder.errors import EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_OK, BuilderError, UsageError, display_path
from builder.schema import write_schemas
from builder.views import matrix_rows, render_matrix, render_stack, stack_json


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so usage errors share the one error path."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message, hint=f"see '{self.prog} --help'")


def _common() -> _Parser:
    common = _Parser(add_help=False)
    common.add_argument("--root", type=Path, default=argparse.SUPPRESS, help="catalogue directory (default: .)")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = _Parser(
        prog="build",
        description="Declarative, locked, verifiable AI container builds for Jetson and x86 CUDA.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"build {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    validate = commands.add_parser("validate", parents=[common], help="check every YAML file of the catalogue")
    validate.add_argument("--json", action="store_true", help="print a JSON summary")
    validate.set_defaults(run=_validate)

    matrix = commands.add_parser("matrix", parents=[common], help="list cells per stack (a CI matrix with --json)")
    matrix.add_argument("--stack", help="only this stack's targets")
    matrix.add_argument("--json", action="store_true", help='print {"include": [...]} for GitHub Actions')
    matrix.set_defaults(run=_matrix)

    schema = commands.add_parser("schema", parents=[common], help="write the JSON Schemas of the catalogue files")
    schema.add_argument("--out", type=Path, help="directory to write to (default: ROOT/schemas)")
    schema.set_defaults(run=_schema)

    show = commands.add_parser("show", parents=[common], help="human summary of a stack")
    show.add_argument("stack", metavar="STACK")
    show.add_argument("--json", action="store_true", help="print the stack and per-target choices as JSON")
    show.set_defaults(run=_show)
    return parser


def _root(args: argparse.Namespace) -> Path:
    return Path(getattr(args, "root", Path()))


def _catalogue(args: argparse.Namespace) -> Catalogue:
    return load_catalogue(_root(args))


def _print_json(value: object) -> None:
    sys.stdout.write(json.dumps(value, indent=2) + "\n")


def _validate(args: argparse.Namespace) -> int:
    catalogue = _catalogue(args)
    counts = {
        "devices": len(catalogue.devices),
        "cells": len(catalogue.cells),
        "recipes": len(catalogue.recipes),
        "stacks": len(catalogue.stacks),
    }
    if args.json:
        _print_json({"ok": True, **counts})
    else:
        summary = ", ".join(f"{count} {kind}" for kind, count in counts.items())
        sys.stdout.write(f"ok: {summary}\n")
    return EXIT_OK


def _matrix(args: argparse.Namespace) -> int:
    catalogue = _catalogue(args)
    if args.json:
        _print_json({"include": matrix_rows(catalogue, args.stack)})
    else:
        sys.stdout.write(render_matrix(catalogue, args.stack))
    return EXIT_OK


def _schema(args: argparse.Namespace) -> int:
    out = args.out if args.out is not None else _root(args) / "schemas"
    for path in write_schemas(out):
        sys.stdout.write(f"wrote {display_path(path)}\n")
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    catalogue = _catalogue(args)
    if args.json:
        _print_json(stack_json(catalogue, args.stack))
    else:
        sys.stdout.write(render_stack(catalogue, args.stack))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        run: Callable[[argparse.Namespace], int] = args.run
        return run(args)
    except BuilderError as error:
        if debug:
            traceback.print_exc()
        for line in error.lines():
            sys.stderr.write(f"{line}\n")
        return error.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except OSError as error:
        if debug:
            traceback.print_exc()
        where = f" {error.filename}:" if error.filename else ""
        sys.stderr.write(f"error:{where} {error.strerror or error}\n")
        return EXIT_BAD_INPUT
    except Exception as error:  # a bug: say so in one line, keep the traceback behind --debug
        if debug:
            traceback.print_exc()
        sys.stderr.write(f"internal error: {type(error).__name__}: {error} (rerun with --debug for the traceback)\n")
        return EXIT_INTERNAL


def entrypoint() -> None:
    sys.exit(main())
