"""The project's own files: pixi manifest, lint and types (real tools, so integration)."""

from __future__ import annotations

import json
import subprocess
import sys

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

import jsonschema
import pytest

from tests.conftest import ROOT

SCHEMAS = ROOT / "tests" / "fixtures" / "schemas"


def test_pixi_manifest_matches_pixis_schema() -> None:
    schema = json.loads((SCHEMAS / "pixi-manifest.schema.json").read_text())
    manifest = tomllib.loads((ROOT / "pixi.toml").read_text())
    jsonschema.validate(manifest, schema, cls=jsonschema.Draft7Validator)
    assert manifest["workspace"]["platforms"] == ["linux-64", "linux-aarch64"]
    assert set(manifest["tasks"]) >= {"build", "test", "lint"}
    assert manifest["pypi-dependencies"]["builder"]["editable"] is True


def test_pixi_schema_rejects_a_broken_manifest() -> None:
    schema = json.loads((SCHEMAS / "pixi-manifest.schema.json").read_text())
    manifest = tomllib.loads((ROOT / "pixi.toml").read_text())
    manifest["workspace"]["platform"] = manifest["workspace"].pop("platforms")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(manifest, schema, cls=jsonschema.Draft7Validator)


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False, timeout=600)


@pytest.mark.integration
@pytest.mark.parametrize(
    "argv",
    [
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        [sys.executable, "-m", "mypy"],
    ],
    ids=["ruff", "ruff-format", "mypy"],  # the workflows' tools: tests/test_workflows.py
)
def test_tool_is_clean(argv: list[str]) -> None:
    result = _run(*argv)
    assert result.returncode == 0, result.stdout + result.stderr


def test_nothing_refers_outside_the_repository() -> None:
    """A user's clone has nothing beside it: no file may point at the developers' notes beside the checkout."""
    outside = "../" + "shared"  # spelled apart so that this file does not name it either
    skip = {".git", ".venv", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis", "__pycache__", "out"}
    offenders = []
    for path in ROOT.rglob("*"):
        parts = path.relative_to(ROOT).parts
        if path.is_file() and not skip.intersection(parts) and not any(p.endswith(".egg-info") for p in parts):
            text = path.read_bytes().decode("utf-8", errors="ignore")
            if outside in text:
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
