"""A bounded YAML reader that keeps every scalar as the text its author wrote.

Why not ``yaml.safe_load``: it turns ``version: 1.10`` into the float ``1.1`` (and ``47.0``
into ``47.0``, ``3.003`` into ``3.003`` only by luck), so two readers of one file disagreed on
a package's version; and it expands aliases, so a 500-byte file of nested aliases becomes
gigabytes and minutes of work. This reader builds the document from libyaml's event stream
itself:

* every scalar stays text (``str``); only a plain empty, ``~`` or ``null`` is ``None``. The
  format's reader decides what a text means (a version, a whole number, a yes/no);
* anchors and aliases are refused (nothing a recipe needs, and the only way YAML can grow);
* a document may have at most :data:`MAX_NODES` nodes nested at most :data:`MAX_DEPTH` deep;
  the caller caps the size of the text;
* a mapping key must be a scalar, and a key may not appear twice in one mapping;
* one document per file.

Errors carry the 1-based line, so a person can find what to fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from events.errors import CairnError

from .values import shown

_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_NODES = 50_000
MAX_DEPTH = 32
_NULLS = frozenset(("", "~", "null", "Null", "NULL"))

#: A parsed node: a mapping (text keys), a sequence, a text, or ``None`` (a plain null).
Value = dict[str, Any] | list[Any] | str | None


class YamlError(CairnError):
    """The text is not YAML this reader accepts; ``line`` is 1-based."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


@dataclass(frozen=True, slots=True)
class Document:
    """The document's value, the line its top node starts on, and where each top-level key
    of a mapping document is (so errors about a key can point at it)."""

    value: Value
    line: int = 1
    key_lines: Mapping[str, int] = field(default_factory=dict)

    def line_of(self, key: str | None) -> int:
        return self.key_lines.get(key, self.line) if key is not None else self.line


@dataclass(slots=True)
class _Frame:
    container: dict[str, Any] | list[Any]
    key: str | None = None
    key_line: int = 0
    waiting_key: bool = True


def _line(event: Any) -> int:
    mark = getattr(event, "start_mark", None)
    return int(mark.line) + 1 if mark is not None else 1


def load(text: str, *, max_nodes: int = MAX_NODES, max_depth: int = MAX_DEPTH) -> Document:
    """Parse ``text`` (see the module docstring); raise :class:`YamlError`."""
    try:
        return _build(yaml.parse(text, Loader=_Loader), max_nodes, max_depth)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise YamlError(line, f"invalid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise YamlError(1, f"invalid YAML: {exc}") from None


def _build(events: Any, max_nodes: int, max_depth: int) -> Document:
    stack: list[_Frame] = []
    root: Value = None
    root_line = 1
    key_lines: dict[str, int] = {}
    nodes = documents = 0

    def put(value: Value, line: int) -> None:
        nonlocal root, root_line
        if not stack:
            root, root_line = value, line
            return
        top = stack[-1]
        if isinstance(top.container, list):
            top.container.append(value)
        elif top.waiting_key:
            if not isinstance(value, str | None):
                raise YamlError(line, "a mapping key must be a plain value, not a list or "
                                      "mapping")  # fmt: skip
            key = value or ""
            if key in top.container:
                raise YamlError(line, f"key {shown(key)} appears twice in one mapping")
            top.key, top.key_line, top.waiting_key = key, line, False
            if len(stack) == 1:
                key_lines[key] = line
        else:
            assert top.key is not None
            top.container[top.key] = value
            top.waiting_key = True

    for event in events:
        if isinstance(event, yaml.AliasEvent):
            raise YamlError(_line(event), "aliases (*name) are not allowed")
        if getattr(event, "anchor", None) is not None:
            raise YamlError(_line(event), f"anchors (&{event.anchor}) are not allowed")
        if isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            if documents > 1:
                raise YamlError(_line(event), "one YAML document per file")
            continue
        if isinstance(event, yaml.ScalarEvent | yaml.MappingStartEvent | yaml.SequenceStartEvent):
            nodes += 1
            if nodes > max_nodes:
                raise YamlError(_line(event), f"more than {max_nodes} values in one document")
        if isinstance(event, yaml.ScalarEvent):
            plain = not event.style and event.implicit[0]
            put(None if plain and event.value in _NULLS else event.value, _line(event))
        elif isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
            if len(stack) >= max_depth:
                raise YamlError(_line(event), f"values nested deeper than {max_depth} levels")
            container: dict[str, Any] | list[Any] = (
                {} if isinstance(event, yaml.MappingStartEvent) else [])
            put(container, _line(event))
            stack.append(_Frame(container))
        elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
            stack.pop()
    return Document(root, root_line, key_lines)
