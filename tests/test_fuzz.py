"""No input, however broken, makes the loader or the validator raise anything but a reported error."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builder.catalogue.yamlio import YamlProblem, parse_yaml
from tests.conftest import FIXTURE, run_cli

DIAGNOSTIC = re.compile(r"^[^:\n]+\.(yaml|yml):\d+:\d+: error: \S.*$")
# More examples by hand: BUILDER_FUZZ_EXAMPLES=5000 python -m pytest tests/test_fuzz.py
FUZZ = settings(
    max_examples=int(os.environ.get("BUILDER_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@contextlib.contextmanager
def _catalogue() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp())
    root = directory / "catalogue"
    shutil.copytree(FIXTURE, root)
    previous = Path.cwd()
    os.chdir(root)
    try:
        yield root
    finally:
        os.chdir(previous)
        shutil.rmtree(directory)


def _assert_clean_validation(root: Path) -> None:
    result = run_cli("validate")
    assert result.code in (0, 2), result.err
    assert "Traceback" not in result.err
    if result.code == 2:
        lines = result.err.splitlines()
        assert lines and all(DIAGNOSTIC.match(line) for line in lines), result.err


@FUZZ
@given(st.text(max_size=400))
def test_any_text_parses_or_reports(text: str) -> None:
    try:
        parse_yaml(text)
    except YamlProblem as problem:
        assert problem.mark.line >= 1 and problem.mark.column >= 1


YAML_TOKENS = st.sampled_from(
    [
        "a",
        ":",
        " ",
        "\n",
        "- ",
        "[",
        "]",
        "{",
        "}",
        ",",
        "&x",
        "*x",
        "<<: ",
        "!!",
        "!tag",
        "'",
        '"',
        "#",
        "|",
        ">",
        "\t",
        "---",
        "?",
    ]
)


@FUZZ
@given(st.lists(YAML_TOKENS, max_size=60).map("".join))
def test_yaml_shaped_noise_parses_or_reports(text: str) -> None:
    try:
        parse_yaml(text)
    except YamlProblem as problem:
        assert problem.mark.line >= 1


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=25,
)
STACK_KEYS = ["name", "description", "targets", "packages", "requirements", "exclude", "runtime", "smoke", "app"]


@FUZZ
@given(st.dictionaries(st.sampled_from(STACK_KEYS) | st.text(max_size=10), JSONISH, max_size=8))
def test_any_stack_document_validates_or_reports(document: dict[str, object]) -> None:
    with _catalogue() as root:
        (root / "stacks/demo.yaml").write_text(yaml.safe_dump(document))
        _assert_clean_validation(root)


FILES = ["stacks/demo.yaml", "recipes/fastlib.yaml", "matrix/nano/device.yaml", "matrix/nano/jp6.2-cu126.yaml"]


@FUZZ
@given(st.sampled_from(FILES), st.integers(min_value=0), st.integers(min_value=0, max_value=12), st.text(max_size=6))
def test_mutated_catalogue_files_validate_or_report(name: str, where: int, cut: int, insert: str) -> None:
    with _catalogue() as root:
        path = root / name
        text = path.read_text()
        position = where % (len(text) + 1)
        path.write_text(text[:position] + insert + text[position + cut :])
        _assert_clean_validation(root)
