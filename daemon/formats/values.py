"""How the text values of a recipe are read: yes/no, lists of texts, shapes in messages."""

from __future__ import annotations

from typing import Any

_TRUE = frozenset(("y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"))
_FALSE = frozenset(("n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"))


class Invalid(ValueError):
    """A value of the wrong shape; the caller adds the file and the line (of ``key``)."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


def is_flag(value: Any) -> bool:
    return isinstance(value, str) and (value in _TRUE or value in _FALSE)


def flag(value: Any) -> bool:
    """A yes/no value as boulder reads one (YAML 1.1's spellings)."""
    if isinstance(value, str) and value in _TRUE:
        return True
    if isinstance(value, str) and value in _FALSE:
        return False
    raise Invalid(f"must be yes or no (true/false), not {shown(value)}")


def shape(value: Any) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return "empty value" if value is None else "text"


def text(value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid(f"must be text, not a {shape(value)}")
    return value


def strings(value: Any) -> tuple[str, ...]:
    """One text or a list of texts."""
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list):
        raise Invalid(f"must be a list of texts, not a {shape(value)}")
    out = []
    for item in value:
        if not isinstance(item, str):
            raise Invalid(f"must be a list of texts; found a {shape(item)}")
        out.append(item)
    return tuple(out)


def shown(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters: errors quote what a recipe says, and a
    recipe may say a great deal."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def short(value: str, limit: int = 120) -> str:
    """A text cut to ``limit`` characters, for a URL or path quoted in an error."""
    return value if len(value) <= limit else value[: limit - 3] + "..."
