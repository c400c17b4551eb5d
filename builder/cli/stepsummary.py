"""The job summary of a CI run: GitHub Actions shows on the run's page whatever a step appends to the
file `$GITHUB_STEP_SUMMARY` names. Commands add their section there; elsewhere this does nothing."""

from __future__ import annotations

import os
import sys
from pathlib import Path

VARIABLE = "GITHUB_STEP_SUMMARY"


def append_step_summary(markdown: str) -> None:
    """Append one section (never truncate: earlier steps' sections stay). A file that cannot be
    written costs a one-line warning, never the command's result."""
    path = os.environ.get(VARIABLE)
    if not path:
        return
    try:
        with Path(path).open("a", encoding="utf-8") as summary:
            summary.write(markdown.rstrip("\n") + "\n\n")
    except OSError as error:
        sys.stderr.write(f"warning: cannot append to the job summary {path} (${VARIABLE}): {error.strerror or error}\n")
