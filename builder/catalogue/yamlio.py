"""Loading YAML safely, with the line and column of every key and value kept for error messages.

Scalars stay strings unless they are null or true/false: versions such as `3.10` or `12.6` must not
become floats, and `no` must not become False. pydantic converts strings to numbers where a model
asks for one.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from builder.catalogue.marks import Mark, MarkedDict, MarkedList
from builder.errors import Diagnostic

MAX_DEPTH = 64
MAX_EXPANDED_NODES = 200_000
MAX_FILE_BYTES = 4 * 1024 * 1024
# libyaml's composer recurses in C: beyond this many flow brackets, compose in Python, which stops at MAX_DEPTH.
MAX_FLOW_BRACKETS = 10_000


class YamlProblem(Exception):
    def __init__(self, mark: Mark, message: str) -> None:
        super().__init__(message)
        self.mark = mark
        self.message = message


def _mark(node: Node) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


class _Constructing(yaml.constructor.SafeConstructor):
    """YAML 1.2-style booleans, no implicit numbers or dates, and marks on every mapping and list."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> MarkedDict:  # type: ignore[override]
        seen: dict[str, Mark] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            if not isinstance(key_node, ScalarNode):
                raise YamlProblem(_mark(key_node), "mapping keys must be plain strings")
            key = str(key_node.value)
            if key in seen:
                first = seen[key]
                raise YamlProblem(_mark(key_node), f"duplicate key '{key}' (first defined at line {first.line})")
            seen[key] = _mark(key_node)
        self.flatten_mapping(node)
        result = MarkedDict()
        result.start = _mark(node)
        result.key_marks = {}
        result.value_marks = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                raise YamlProblem(_mark(key_node), "mapping keys must be plain strings")
            result[key] = self.construct_object(value_node, deep=True)
            result.key_marks[key] = _mark(key_node)
            result.value_marks[key] = _mark(value_node)
        return result

    def construct_sequence(self, node: SequenceNode, deep: bool = False) -> MarkedList:
        result = MarkedList(self.construct_object(child, deep=True) for child in node.value)
        result.start = _mark(node)
        result.item_marks = [_mark(child) for child in node.value]
        return result

    def construct_undefined(self, node: Node) -> Any:
        tag = str(node.tag).replace("tag:yaml.org,2002:", "!!")
        raise YamlProblem(_mark(node), f"unsupported tag '{tag}' (only plain YAML is allowed)")


class _Loader(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser, yaml.composer.Composer,
              _Constructing, yaml.resolver.Resolver):  # fmt: skip
    """The pure-Python loader: it checks nesting while composing, and its errors are the reference."""

    depth = 0

    def __init__(self, stream: str) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        yaml.composer.Composer.__init__(self)
        _Constructing.__init__(self)
        yaml.resolver.Resolver.__init__(self)

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                event = self.peek_event()  # type: ignore[no-untyped-call]
                mark = Mark(event.start_mark.line + 1, event.start_mark.column + 1)
                raise YamlProblem(mark, f"document is nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


_LOADERS: list[type[Any]] = [_Loader]
_CParser: Any = getattr(importlib.import_module("yaml.cyaml"), "CParser", None) if yaml.__with_libyaml__ else None
_FastLoader: Any = None
if _CParser is not None:  # libyaml composes several times faster; the checks then run over the node tree

    class _FastLoader(_CParser, _Constructing, yaml.resolver.Resolver):  # type: ignore[no-redef,misc]
        def __init__(self, stream: str) -> None:
            _CParser.__init__(self, stream)
            _Constructing.__init__(self)
            yaml.resolver.Resolver.__init__(self)

    _LOADERS.append(_FastLoader)

for _class in _LOADERS:
    _class.yaml_implicit_resolvers = {
        first: [
            (tag, regexp) for tag, regexp in resolvers if tag in ("tag:yaml.org,2002:null", "tag:yaml.org,2002:merge")
        ]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    _class.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|false)$"), list("tf"))
    _class.add_constructor("tag:yaml.org,2002:map", _Constructing.construct_mapping)
    _class.add_constructor("tag:yaml.org,2002:seq", _Constructing.construct_sequence)
    _class.add_constructor(None, _Constructing.construct_undefined)
    for _tag in ("int", "float", "timestamp", "binary", "set", "omap", "pairs"):
        _class.add_constructor(f"tag:yaml.org,2002:{_tag}", _Constructing.construct_undefined)
    _class.add_constructor("tag:yaml.org,2002:bool", _Constructing.construct_yaml_bool)


def _expanded_size(node: Node, memo: dict[int, int]) -> int:
    """Nodes the document would have with every alias copied out: bounds 'billion laughs' inputs."""
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = 1  # an alias cycle counts once instead of looping
    if isinstance(node, MappingNode):
        size = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    elif isinstance(node, SequenceNode):
        size = 1 + sum(_expanded_size(child, memo) for child in node.value)
    else:
        size = 1
    memo[key] = min(size, MAX_EXPANDED_NODES + 1)
    return memo[key]


def _decode(data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        raise YamlProblem(Mark(line, column), f"file is not valid UTF-8 (byte 0x{data[exc.start]:02x})") from None
    return text.removeprefix("\ufeff")


def parse_yaml(text: str) -> Any:
    """Parse one YAML document; raises YamlProblem with a position on any problem.

    libyaml composes when it is there and the text cannot nest deeper than its composer can
    recurse; any problem is then parsed again by the pure-Python loader, whose errors and
    positions are the reference, so both paths report the same thing at the same place.
    """
    if _FastLoader is not None and text.count("[") + text.count("{") <= MAX_FLOW_BRACKETS:
        try:
            return _parse_fast(text)
        except (yaml.YAMLError, YamlProblem, RecursionError, _AskTheReference):
            pass
    return _parse_reference(text)


class _AskTheReference(Exception):
    """The fast path found a problem; the reference loader says exactly what and where."""


def _parse_fast(text: str) -> Any:
    if yaml.reader.Reader.NON_PRINTABLE.search(text):
        raise _AskTheReference
    loader = _FastLoader(text)
    try:
        node = loader.get_single_node()
        if node is None or _deeper_than(node, MAX_DEPTH) or _expanded_size(node, {}) > MAX_EXPANDED_NODES:
            raise _AskTheReference
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _deeper_than(root: Node, limit: int) -> bool:
    """Whether any node stands deeper than `limit` (the root at depth 1); each node is visited once."""
    seen: set[int] = set()
    pending: list[tuple[Node, int]] = [(root, 1)]
    while pending:
        node, depth = pending.pop()
        if depth > limit:
            return True
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, MappingNode):
            pending += [(child, depth + 1) for pair in node.value for child in pair]
        elif isinstance(node, SequenceNode):
            pending += [(child, depth + 1) for child in node.value]
    return False


def _parse_reference(text: str) -> Any:
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as exc:
        before = text[: exc.position]
        mark = Mark(before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1)
        raise YamlProblem(mark, f"invalid YAML: character 0x{exc.character:02x} is not allowed") from None
    try:
        node = loader.get_single_node()
        if node is None:
            raise YamlProblem(Mark(1, 1), "file is empty (expected a YAML mapping)")
        if _expanded_size(node, {}) > MAX_EXPANDED_NODES:
            raise YamlProblem(_mark(node), f"document expands to more than {MAX_EXPANDED_NODES} nodes through aliases")
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        position = exc.problem_mark or exc.context_mark
        where = Mark(position.line + 1, position.column + 1) if position is not None else Mark(1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        if problem.startswith("but ") and exc.context:
            problem = f"{exc.context}, {problem}"
        if isinstance(exc, ConstructorError) and "constructor" in problem:
            problem = "unsupported tag (only plain YAML is allowed)"
        raise YamlProblem(where, f"invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise YamlProblem(Mark(1, 1), f"invalid YAML: {exc}") from None
    except RecursionError:
        raise YamlProblem(Mark(1, 1), f"document is nested deeper than {MAX_DEPTH} levels") from None
    finally:
        loader.dispose()


def load_yaml_file(path: Path) -> tuple[Any, list[Diagnostic]]:
    """Read and parse one file: the document, or a diagnostic saying why there is none."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, [Diagnostic(path, 1, 1, f"cannot read file: {exc.strerror}")]
    try:
        if len(data) > MAX_FILE_BYTES:
            raise YamlProblem(Mark(1, 1), f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
        document = parse_yaml(_decode(data))
    except YamlProblem as problem:
        return None, [Diagnostic(path, problem.mark.line, problem.mark.column, problem.message)]
    if not isinstance(document, MarkedDict):
        kind = "a list" if isinstance(document, list) else "a single value"
        return None, [Diagnostic(path, 1, 1, f"expected a YAML mapping at the top level, found {kind}")]
    return document, []
