"""Text from builds is shown on terminals with its control characters escaped."""

from __future__ import annotations

import pytest

from daemon.terminal import printable


@pytest.mark.parametrize(("raw", "shown"), [
    ("plain text, tabs\tstay", "plain text, tabs\tstay"),
    ("\x1b[2Jclear", "\\x1b[2Jclear"),
    ("title\x1b]0;pwned\x07", "title\\x1b]0;pwned\\x07"),
    ("over\rwrite", "over\\x0dwrite"),
    ("two\nlines", "two\\x0alines"),
    ("c1 \x9b31m csi", "c1 \\x9b31m csi"),
    ("del\x7f", "del\\x7f"),
    ("bidi \u202egnp.exe", "bidi \\u202egnp.exe"),
    ("unicode é ✓ stays", "unicode é ✓ stays"),
])  # fmt: skip
def test_controls_are_escaped(raw: str, shown: str) -> None:
    assert printable(raw) == shown
