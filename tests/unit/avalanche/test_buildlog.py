"""One log line is bounded: while it is read from the build and when it is written."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from daemon.avalanche.buildlog import LINE_MAX, BuildLog, cut_line
from daemon.avalanche.process import _pump


def _pumped(data: bytes) -> list[str]:
    read, write = os.pipe()
    lines: list[str] = []
    with os.fdopen(read, "rb") as stream:
        writer = threading.Thread(target=lambda: (os.write(write, data), os.close(write)))
        writer.start()
        _pump(stream, lines.append)
        writer.join()
    return lines


def test_short_lines_pass_untouched() -> None:
    lines = _pumped(b"one\r\ntwo\n\nlast without newline")
    assert lines == ["one", "two", "", "last without newline"]


def test_a_long_line_is_cut_with_its_size_and_the_next_line_kept() -> None:
    lines = _pumped(b"y" * 1_000_000 + b"\nnext\n")
    assert lines == ["y" * LINE_MAX + f" [... line cut: {1_000_000 - LINE_MAX} more bytes]", "next"]


def test_a_long_unterminated_line_is_cut_at_the_end() -> None:
    (line,) = _pumped("é".encode() * 300_000)
    assert line == "é" * LINE_MAX + f" [... line cut: {2 * (300_000 - LINE_MAX)} more bytes]"


def test_a_line_of_exactly_the_limit_is_whole() -> None:
    assert _pumped(b"z" * LINE_MAX + b"\n") == ["z" * LINE_MAX]


def test_the_log_cuts_lines_given_to_it_and_leaves_cut_ones(tmp_path: Path) -> None:
    seen: list[str] = []
    log = BuildLog(tmp_path / "build.log", seen.append)
    already = cut_line("w" * 50_000)
    log.line("v" * 10_000)
    log.line(already)
    log.close()
    expected = ["v" * LINE_MAX + f" [... line cut: {10_000 - LINE_MAX} more bytes]", already]
    assert seen == expected
    assert (tmp_path / "build.log").read_text().splitlines() == expected
