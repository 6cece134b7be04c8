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

from collections.abc import Iterator, Mapping
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
    container: Any  # dict[str, Any] (``is_list`` false) or list[Any]
    key: str | None = None
    waiting_key: bool = True
    is_list: bool = False


def _line(event: Any) -> int:
    mark = getattr(event, "start_mark", None)
    return int(mark.line) + 1 if mark is not None else 1


def load(text: str, *, max_nodes: int = MAX_NODES, max_depth: int = MAX_DEPTH) -> Document:
    """Parse ``text`` (see the module docstring); raise :class:`YamlError`."""
    try:
        return _build(_events(text), max_nodes, max_depth)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise YamlError(line, f"invalid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise YamlError(1, f"invalid YAML: {exc}") from None


def _events(text: str) -> Iterator[Any]:
    """libyaml's events, straight from its parser (``yaml.parse`` asks twice per event)."""
    next_event = _Loader(text).get_event
    while (event := next_event()) is not None:
        yield event


_SCALAR, _ALIAS, _DOC_START = yaml.ScalarEvent, yaml.AliasEvent, yaml.DocumentStartEvent
_OPEN = {yaml.MappingStartEvent: dict, yaml.SequenceStartEvent: list}
_CLOSE = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


def _build(events: Iterator[Any], max_nodes: int, max_depth: int) -> Document:
    stack: list[_Frame] = []
    root: Value = None
    root_line = 1
    key_lines: dict[str, int] = {}
    nodes = documents = 0

    def put(value: Value, event: Any) -> None:
        nonlocal root, root_line
        if not stack:
            root, root_line = value, _line(event)
            return
        top = stack[-1]
        if top.is_list:
            top.container.append(value)
        elif top.waiting_key:
            if not isinstance(value, str | None):
                raise YamlError(_line(event), "a mapping key must be a plain value, not a "
                                              "list or mapping")  # fmt: skip
            key = value or ""
            if key in top.container:
                raise YamlError(_line(event), f"key {shown(key)} appears twice in one mapping")
            top.key, top.waiting_key = key, False
            if len(stack) == 1:
                key_lines[key] = _line(event)
        else:
            top.container[top.key] = value
            top.waiting_key = True

    for event in events:
        kind = type(event)
        if kind is _ALIAS:
            raise YamlError(_line(event), "aliases (*name) are not allowed")
        if getattr(event, "anchor", None) is not None:
            raise YamlError(_line(event), f"anchors (&{event.anchor}) are not allowed")
        if kind is _SCALAR:
            nodes += 1
            if nodes > max_nodes:
                raise YamlError(_line(event), f"more than {max_nodes} values in one document")
            value = event.value
            plain = not event.style and event.implicit[0]
            put(None if plain and value in _NULLS else value, event)
        elif kind in _OPEN:
            nodes += 1
            if nodes > max_nodes:
                raise YamlError(_line(event), f"more than {max_nodes} values in one document")
            if len(stack) >= max_depth:
                raise YamlError(_line(event), f"values nested deeper than {max_depth} levels")
            container: dict[str, Any] | list[Any] = _OPEN[kind]()
            put(container, event)
            stack.append(_Frame(container, is_list=kind is not yaml.MappingStartEvent))
        elif kind in _CLOSE:
            stack.pop()
        elif kind is _DOC_START:
            documents += 1
            if documents > 1:
                raise YamlError(_line(event), "one YAML document per file")
    return Document(root, root_line, key_lines)
