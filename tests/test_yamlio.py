from __future__ import annotations

from pathlib import Path

import pytest

from builder.catalogue.marks import MarkedDict, mark_of
from builder.catalogue.yamlio import MAX_DEPTH, YamlProblem, load_yaml_file, parse_yaml


def test_scalars_stay_strings_except_null_and_booleans() -> None:
    data = parse_yaml("python: 3.10\ncuda: 12.6\nanswer: no\nflag: true\nnothing: ~\ncount: 3\n")
    assert data == {"python": "3.10", "cuda": "12.6", "answer": "no", "flag": True, "nothing": None, "count": "3"}


def test_marks_point_at_keys_and_values() -> None:
    data = parse_yaml("a:\n  b: [x, y]\n  c: 1\n")
    assert isinstance(data, MarkedDict)
    assert mark_of(data, ("a", "b", 1)).line == 2
    assert mark_of(data, ("a", "b", 1)).column == 10
    assert mark_of(data, ("a", "c"), key=True).column == 3
    assert mark_of(data, ("a", "missing")).line == 2  # the parent mapping


def test_anchors_and_merge_keys() -> None:
    data = parse_yaml("base: &base {x: 1, y: 2}\nchild:\n  <<: *base\n  y: 3\n")
    assert data["child"] == {"x": "1", "y": "3"}


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [
        ("a: 1\na: 2\n", 2, 1, "duplicate key 'a' (first defined at line 1)"),
        ("a: !!python/object/apply:os.system [ls]\n", 1, 4, "unsupported tag '!!python/object/apply:os.system'"),
        ("a: !env HOME\n", 1, 4, "unsupported tag '!env'"),
        ("", 1, 1, "file is empty"),
        ("a: &a [*a]\n", 1, 4, "invalid YAML: found unconstructable recursive node"),
        ("a: *missing\n", 1, 4, "invalid YAML: found undefined alias 'missing'"),
        ("? [a, b]\n: 1\n", 1, 3, "mapping keys must be plain strings"),
        ("a: " + "[" * 100 + "]" * 100, 1, 3 + MAX_DEPTH, f"nested deeper than {MAX_DEPTH} levels"),
    ],
)
def test_problems_have_positions(text: str, line: int, column: int, message: str) -> None:
    with pytest.raises(YamlProblem) as caught:
        parse_yaml(text)
    assert (caught.value.mark.line, caught.value.mark.column) == (line, column)
    assert message in caught.value.message


def test_alias_bomb_is_refused_quickly() -> None:
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"l{i}: &l{i} [{', '.join(['*l' + str(i - 1)] * 10)}]" for i in range(1, 12)]
    with pytest.raises(YamlProblem, match="expands to more than"):
        parse_yaml("\n".join(lines) + "\n")


def test_non_utf8_reports_the_byte(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"name: demo\ndescription: caf\xe9\n")
    data, problems = load_yaml_file(path)
    assert data is None
    assert [(p.line, p.column, p.message) for p in problems] == [(2, 17, "file is not valid UTF-8 (byte 0xe9)")]


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    _, problems = load_yaml_file(path)
    assert [p.message for p in problems] == ["expected a YAML mapping at the top level, found a list"]
