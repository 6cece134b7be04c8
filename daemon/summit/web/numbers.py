"""Whole numbers from requests (paths, queries, cookies, SSE ids, topics): ASCII digits.

``str.isdigit`` is true for ``²`` and other digits ``int`` refuses, so "isdigit, then int"
turned ``/api/v1/tasks/²`` into a 500; every such check goes through :func:`whole`.
"""

from __future__ import annotations


def whole(text: str, max_digits: int = 18) -> int | None:
    """``text`` as a non-negative integer of at most ``max_digits`` ASCII digits, or None."""
    if 0 < len(text) <= max_digits and text.isascii() and text.isdigit():
        return int(text)
    return None
