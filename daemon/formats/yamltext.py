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

from collections.abc import Callable, Mapping
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


def _line(event: Any) -> int:
    mark = getattr(event, "start_mark", None)
    return int(mark.line) + 1 if mark is not None else 1


def load(text: str, *, max_nodes: int = MAX_NODES, max_depth: int = MAX_DEPTH) -> Document:
    """Parse ``text`` (see the module docstring); raise :class:`YamlError`."""
    try:
        # libyaml's events straight from its parser (``yaml.parse`` asks twice per event).
        return _build(_Loader(text).get_event, max_nodes, max_depth)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise YamlError(line, f"invalid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise YamlError(1, f"invalid YAML: {exc}") from None


_SCALAR, _ALIAS, _DOC_START = yaml.ScalarEvent, yaml.AliasEvent, yaml.DocumentStartEvent
_MAP_START, _SEQ_START = yaml.MappingStartEvent, yaml.SequenceStartEvent
_MAP_END, _SEQ_END = yaml.MappingEndEvent, yaml.SequenceEndEvent
#: The key of the mapping being built when the next scalar is a key, not a value.
_NO_KEY: Any = object()


def _build(next_event: Callable[[], Any], max_nodes: int, max_depth: int) -> Document:
    """The document from the event stream, with every check of the module docstring.

    One loop with the state in local variables — the container being filled (``top``:
    ``None`` at the document level, a dict or a list), the key waiting for its value, and
    the parents' (container, key) on ``stack``: this runs once per event of every recipe
    of a tree (50,000 recipes at a first plan), and a call or an object per event was
    half of reading a recipe.
    """
    stack: list[tuple[Any, Any]] = []
    top: Any = None
    key: Any = _NO_KEY
    root: Value = None
    root_line = 1
    key_lines: dict[str, int] = {}
    nodes = documents = 0
    while (event := next_event()) is not None:
        kind = type(event)
        if kind is _SCALAR:
            if event.anchor is not None:
                raise YamlError(_line(event), f"anchors (&{event.anchor}) are not allowed")
            nodes += 1
            if nodes > max_nodes:
                raise YamlError(_line(event), f"more than {max_nodes} values in one document")
            value = event.value
            if value in _NULLS and not event.style and event.implicit[0]:
                value = None
            if top.__class__ is list:
                top.append(value)
            elif top is None:
                root, root_line = value, _line(event)
            elif key is _NO_KEY:
                key = value or ""
                if key in top:
                    raise YamlError(_line(event), f"key {shown(key)} appears twice in one mapping")
                if len(stack) == 1:
                    key_lines[key] = _line(event)
            else:
                top[key] = value
                key = _NO_KEY
        elif kind is _MAP_START or kind is _SEQ_START:
            if event.anchor is not None:
                raise YamlError(_line(event), f"anchors (&{event.anchor}) are not allowed")
            nodes += 1
            if nodes > max_nodes:
                raise YamlError(_line(event), f"more than {max_nodes} values in one document")
            if len(stack) >= max_depth:
                raise YamlError(_line(event), f"values nested deeper than {max_depth} levels")
            container: dict[str, Any] | list[Any] = {} if kind is _MAP_START else []
            if top.__class__ is list:
                top.append(container)
            elif top is None:
                root, root_line = container, _line(event)
            elif key is _NO_KEY:
                raise YamlError(_line(event), "a mapping key must be a plain value, not a "
                                              "list or mapping")  # fmt: skip
            else:
                top[key] = container
            stack.append((top, _NO_KEY))
            top, key = container, _NO_KEY
        elif kind is _MAP_END or kind is _SEQ_END:
            top, key = stack.pop()
        elif kind is _ALIAS:
            raise YamlError(_line(event), "aliases (*name) are not allowed")
        elif kind is _DOC_START:
            documents += 1
            if documents > 1:
                raise YamlError(_line(event), "one YAML document per file")
    return Document(root, root_line, key_lines)
