"""Text from builds and recipes, made safe to print on a person's terminal.

Build output and failure reasons are data written by whoever wrote the recipe. Printed raw,
an escape sequence in them can rewrite the screen, retitle the window, hide lines or, on some
terminals, answer back. :func:`printable` shows every control character (C0 except tab, DEL,
C1) and the bidirectional-override characters as a visible escape (``\\x1b``, ``\\u202e``), so
what a person reads is what the build wrote.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with control and direction-override characters escaped (see the module)."""
    return _UNSAFE.sub(_escape, text)
