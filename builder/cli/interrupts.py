"""Ctrl-C and SIGTERM for the `build` command: one line and exit 130, never a traceback.

Imported first by `builder.cli`, this installs a handler at once when the process is the `build`
command (or `python -m builder`), so an interrupt while Python is still loading builder ends it
quietly; `entrypoint` then hands interrupts to `main`, which stops children before exiting.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from types import FrameType

EXIT_INTERRUPTED = 130  # as builder.errors says, without loading it


def _before_main(signum: int, frame: FrameType | None) -> None:
    os.write(2, b"error: interrupted\n")
    os._exit(EXIT_INTERRUPTED)


def as_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM is handled as Ctrl-C: children are stopped, then exit 130."""
    raise KeyboardInterrupt


def run_as_command() -> bool:
    """Whether this process is the `build` command (or `python -m builder`), not a program importing builder."""
    program = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path()
    return program.name == "build" or program.parts[-2:] == ("builder", "__main__.py")


def hand_to_main() -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, as_keyboard_interrupt)


if run_as_command():
    signal.signal(signal.SIGINT, _before_main)
    signal.signal(signal.SIGTERM, _before_main)
