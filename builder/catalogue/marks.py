"""Where each key, value and item of a YAML document stood: the marks every error message points at.
Kept apart from the YAML loader so that reading marked data back does not import the loader."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Mark:
    line: int  # 1-based
    column: int  # 1-based


class MarkedDict(dict[str, Any]):
    """A mapping that remembers where each key and value stood in the file."""

    start: Mark
    key_marks: dict[str, Mark]
    value_marks: dict[str, Mark]


class MarkedList(list[Any]):
    start: Mark
    item_marks: list[Mark]


def mark_of(document: MarkedDict, loc: tuple[str | int, ...], *, key: bool = False) -> Mark:
    """Where the value (or with key=True, the key) at `loc` stands; the nearest parent if it is absent."""
    node: Any = document
    mark = document.start
    for index, part in enumerate(loc):
        last = index == len(loc) - 1
        if isinstance(node, MarkedDict) and isinstance(part, str) and part in node:
            mark = node.key_marks[part] if (last and key) else node.value_marks[part]
            node = node[part]
        elif isinstance(node, MarkedList) and isinstance(part, int) and 0 <= part < len(node):
            mark = node.item_marks[part]
            node = node[part]
        elif isinstance(node, MarkedDict | MarkedList):
            # A key the document lacks (a missing field) or a union tag pydantic inserted: stop here.
            if last or not isinstance(part, str):
                return mark
        else:
            return mark
    return mark
