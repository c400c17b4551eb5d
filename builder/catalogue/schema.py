"""JSON Schemas generated from the models, one per kind of catalogue file."""

from __future__ import annotations

import json
from pathlib import Path

from builder.catalogue.models import SCHEMA_MODELS
from builder.fsutil import write_atomic


def schema_texts() -> dict[str, str]:
    """File name -> schema text, deterministic so committed copies can be compared byte for byte."""
    texts = {}
    for kind, model in SCHEMA_MODELS.items():
        schema = model.model_json_schema()
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": f"builder {kind}", **schema}
        texts[f"{kind}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return texts


def write_schemas(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in schema_texts().items():
        path = directory / name
        write_atomic(path, text)
        written.append(path)
    return written
