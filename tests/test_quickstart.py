"""The README's quick start, word for word, in a fresh virtual environment and a fresh copy."""

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


def test_quickstart_has_two_commands() -> None:
    lines = quickstart_lines()
    assert len(lines) == 2
    assert "build " in lines[0]
    assert "pytest" in lines[1]


@pytest.mark.integration
def test_quickstart_runs_in_a_fresh_venv(tmp_path: Path) -> None:
    ignore = shutil.ignore_patterns(".git", ".venv", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis", "out")
    project = tmp_path / "main"
    shutil.copytree(ROOT, project, ignore=ignore)
    shared = ROOT.parent / "shared"
    if shared.exists():
        (tmp_path / "shared").symlink_to(shared)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {
        **os.environ,
        "PATH": f"{venv / 'bin'}:{os.environ['PATH']}",
        "VIRTUAL_ENV": str(venv),
        QUICKSTART_INNER: "1",
    }
    env.pop("PYTHONPATH", None)
    install_and_run, run_tests = quickstart_lines()

    first = subprocess.run(
        install_and_run, shell=True, cwd=project, env=env, capture_output=True, text=True, timeout=900
    )
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "ok: " in first.stdout and "maie-jetson:" in first.stdout
    assert shutil.which("build", path=str(venv / "bin"))

    second = subprocess.run(run_tests, shell=True, cwd=project, env=env, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert re.search(r"\d+ passed", second.stdout)
