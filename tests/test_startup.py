"""Commands import only what they use: measured in a fresh interpreter, so sys.modules is honest."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.test_render import GOLDEN_CASES, attach_locks, copy_catalogue

NETWORK = ("requests", "urllib3", "uv", "builder.upstream.http", "builder.upstream.index", "builder.upstream.git",
           "builder.upstream.registry", "builder.upstream.uv", "builder.upstream.upstreams")  # fmt: skip
ENGINES = ("builder.build", "builder.process")
TEMPLATES = ("jinja2",)
PLOTS = ("matplotlib", "builder.report")  # build report's alone

PROBE = """
import json, sys
from builder.cli import main
codes = [main(argv) for argv in json.loads(sys.argv[1])]
print(json.dumps({"codes": codes, "modules": sorted(sys.modules)}))
"""


def loaded(commands: list[list[str]], cwd: Path) -> tuple[list[int], set[str]]:
    """The exit codes of `commands` run in one fresh interpreter, and every module it loaded."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(commands)],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(cwd)},
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    return report["codes"], set(report["modules"])


def matching(modules: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes))


@pytest.mark.integration
def test_version_loads_only_the_parser() -> None:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "builder", "--version"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and result.stdout.startswith("build ")
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert not matching(imported, ("pydantic", "yaml", "packaging", *NETWORK, *ENGINES, *TEMPLATES))


@pytest.mark.integration
def test_catalogue_commands_load_no_network_engine_or_template_code() -> None:
    codes, modules = loaded([["validate"], ["show", "maie-jetson"], ["matrix", "--json"]], ROOT)
    assert codes == [0, 0, 0]
    assert not matching(modules, (*NETWORK, *ENGINES, *TEMPLATES, *PLOTS))


@pytest.mark.integration
def test_plan_and_render_from_a_lock_load_no_network_code(tmp_path: Path) -> None:
    root = copy_catalogue(tmp_path / "catalogue")
    attach_locks(root)
    stack, target = GOLDEN_CASES[0]
    codes, modules = loaded(
        [["plan", stack, "--target", target], ["render", stack, "--target", target, "--out", str(tmp_path / "out")]],
        root,
    )
    assert codes == [0, 0]
    assert (tmp_path / "out" / "Dockerfile").is_file()
    assert not matching(modules, (*NETWORK, *ENGINES, *PLOTS))
    assert "builder.lock.model" in modules and "builder.plan.stages" in modules


@pytest.mark.integration
def test_report_loads_no_network_or_engine_code(tmp_path: Path) -> None:
    command = ["report", "reference-h200", "--root", str(ROOT), "--lock-dir", str(ROOT / "tests/fixtures/locks")]
    codes, modules = loaded(
        [[*command, "--results", str(tmp_path / "out"), "--out", str(tmp_path / "report")]], tmp_path
    )
    assert codes == [0] and (tmp_path / "report" / "report.html").is_file()
    assert "matplotlib" in modules
    assert not matching(modules, (*NETWORK, *ENGINES))
