"""The `build` command line: parses arguments, calls the library, prints, formats errors and exits.

Only argparse and the error module load at start; each command's module (and what it needs) is
imported once the command is known, so `build --version` and catalogue-only commands start fast.
"""

from __future__ import annotations

from builder.cli import interrupts  # isort: skip  # first of all: it installs the early interrupt handler

import importlib
import os
import sys
import traceback
from collections.abc import Sequence

from builder.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, BuilderError, FileProblem


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        from builder.cli.parser import parse_args

        args = parse_args(argv)
        command = importlib.import_module(f"builder.cli.{args.command.partition('-')[0]}")
        code: int = command.run(command.settings(args))
        return code
    except BuilderError as error:
        return _report(error, debug)
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
    except OSError as error:
        return _report(FileProblem(error), debug)
    except Exception as error:  # a bug: say so in one line, keep the traceback behind --debug
        if debug:
            traceback.print_exc()
        sys.stderr.write(f"internal error: {type(error).__name__}: {error} (rerun with --debug for the traceback)\n")
        return EXIT_INTERNAL


def _report(error: BuilderError, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    for line in error.lines():
        sys.stderr.write(f"{line}\n")
    return error.exit_code


def entrypoint() -> None:
    interrupts.hand_to_main()
    code = main()
    if code == EXIT_INTERRUPTED:
        # An interrupt main has handled can still make Python end the process by SIGINT at exit
        # (a KeyboardInterrupt seen while it ran module code); exit with the code builder promises.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
