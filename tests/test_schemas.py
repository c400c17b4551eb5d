"""The committed JSON Schemas match the models, and every catalogue file names and passes its schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from builder.catalogue.schema import schema_texts
from tests.conftest import ROOT, run_cli


def test_committed_schemas_are_up_to_date() -> None:
    for name, text in schema_texts().items():
        committed = ROOT / "schemas" / name
        assert committed.exists(), f"schemas/{name} is missing: run 'build schema'"
        assert committed.read_text() == text, f"schemas/{name} is stale: run 'build schema'"


def test_schema_command_writes_into_out(tmp_path: Path) -> None:
    result = run_cli("schema", "--out", str(tmp_path / "out"))
    assert result.code == 0
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == sorted(schema_texts())
    assert not list((tmp_path / "out").glob(".*"))  # no temporary files left behind


def _catalogue_files() -> list[Path]:
    return sorted([*ROOT.glob("matrix/**/*.yaml"), *ROOT.glob("recipes/*.yaml"), *ROOT.glob("stacks/*.yaml")])


def _schema_for(path: Path) -> str:
    relative = path.relative_to(ROOT)
    if relative.parts[0] == "matrix":
        if path.name == "indexes.yaml":
            return "indexes"
        return "device" if path.name == "device.yaml" else "cell"
    return {"recipes": "recipe", "stacks": "stack"}[relative.parts[0]]


@pytest.mark.parametrize("path", _catalogue_files(), ids=lambda path: str(path.relative_to(ROOT)))
def test_file_names_its_schema_and_passes_it(path: Path) -> None:
    kind = _schema_for(path)
    expected = Path(*[".."] * (len(path.relative_to(ROOT).parts) - 1), "schemas", f"{kind}.schema.json")
    first_line = path.read_text().splitlines()[0]
    assert first_line == f"# yaml-language-server: $schema={expected.as_posix()}"
    schema = json.loads((ROOT / "schemas" / f"{kind}.schema.json").read_text())
    jsonschema.validate(yaml.safe_load(path.read_text()), schema, cls=jsonschema.Draft202012Validator)
