"""The README's quick start, word for word, in a fresh virtual environment and a copy of the
repository with nothing beside it (a user's clone has nothing else beside it)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import QUICKSTART_INNER, ROOT


def quickstart_lines() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- quickstart -->\s*```(?:sh|bash|console)\n(.*?)```", readme, re.DOTALL)
    assert block, "README.md has no quick-start block"
    return [line for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]


def test_quickstart_installs_and_runs_then_tests() -> None:
    install_and_run, run_tests = quickstart_lines()
    assert install_and_run.startswith("pip install -e . && build ")
    assert run_tests == "bash .ci/run"


def test_ci_script_installs_then_runs_the_test_suite() -> None:
    """`.ci/run` is the README's test command: it sets everything up, then runs pytest and fails with it."""
    script = (ROOT / ".ci" / "run").read_text()
    assert script.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in script
    commands = [line for line in script.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert commands[-1] == "python3 -m pytest"
    assert "pip install" in script and "apt-get install" in script


def clone_without_neighbours(destination: Path) -> Path:
    """What a user's clone holds (tracked files and new ones git does not ignore), alone in a directory."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    project = destination / "main"
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (project / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, project / name)
    assert sorted(p.name for p in destination.iterdir()) == ["main"]
    return project


@pytest.mark.integration
def test_quickstart_and_unit_suite_in_a_clone_with_nothing_beside_it(tmp_path: Path) -> None:
    project = clone_without_neighbours(tmp_path / "alone")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {
        **os.environ,
        "PATH": f"{venv / 'bin'}:{os.environ['PATH']}",
        "VIRTUAL_ENV": str(venv),
        QUICKSTART_INNER: "1",
    }
    env.pop("PYTHONPATH", None)
    install_and_run, _ = quickstart_lines()

    first = subprocess.run(
        install_and_run, shell=True, cwd=project, env=env, capture_output=True, text=True, timeout=900
    )
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "ok: " in first.stdout and "maie-jetson:" in first.stdout
    assert shutil.which("build", path=str(venv / "bin"))

    units = subprocess.run(
        "pip install --quiet -e '.[test]' && python -m pytest -q -p no:cacheprovider -m 'not integration'",
        shell=True,
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert units.returncode == 0, units.stdout[-3000:] + units.stderr[-3000:]
    assert re.search(r"\d+ passed", units.stdout) and "failed" not in units.stdout
