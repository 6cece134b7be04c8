"""The build log: every line goes to a file and, as it is written, to a callback.

The callback is how the service streams the log over MQTT; it is called from the build
thread, so it must be cheap and thread-safe (``loop.call_soon_threadsafe``). A callback that
raises does not break the build: the file still gets the line.

A line longer than :data:`LINE_MAX` characters is cut, in the file and for the callback alike,
and ends with a marker saying how much was dropped: a build that prints megabytes without a
newline must not make every reader of its log hold them. The text is kept as the build wrote
it (control characters included: the log is data); whoever shows it on a terminal escapes it
(:func:`daemon.terminal.printable`).

A log may have a size cap (``cap_bytes``, counted over the build's output lines). The line
that would pass it is replaced by a marker, nothing of the build's output is kept after it,
and ``on_full`` is called once: the build then stops or goes on, as its limits say. The
builder's own lines (:meth:`BuildLog.phase`) are always kept, so the log still ends with
the build's outcome and how much output was dropped.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

LogCallback = Callable[[str], None]

#: The longest line (in characters) the log keeps whole.
LINE_MAX = 4096
#: Room for the marker: a line up to this much longer is taken as already cut.
_MARKER_ROOM = 64


def cut_line(text: str, dropped: int = 0) -> str:
    """``text`` bounded to :data:`LINE_MAX` characters, with a marker saying how many bytes
    were cut (``dropped`` counts those already cut before ``text`` was read)."""
    if not dropped and len(text) <= LINE_MAX + _MARKER_ROOM:
        return text
    if len(text) > LINE_MAX:
        dropped += len(text[LINE_MAX:].encode("utf-8", "replace"))
        text = text[:LINE_MAX]
    return f"{text} [... line cut: {dropped} more bytes]"


class BuildLog:
    def __init__(self, path: Path, callback: LogCallback | None = None, *,
                 cap_bytes: int | None = None,
                 on_full: Callable[[], None] | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._callback = callback
        self._lock = threading.Lock()
        self._file: TextIO = path.open("a", encoding="utf-8", errors="replace")
        self.callback_errors = 0
        #: The last lines, for a failure reason a person can act on without the whole log.
        self.tail: deque[str] = deque(maxlen=20)
        self.cap_bytes = cap_bytes
        self._on_full = on_full
        #: Bytes of build output kept, and bytes dropped past the cap.
        self.kept_bytes = 0
        self.dropped_bytes = 0

    def line(self, text: str) -> None:
        """A line of the build's output: kept while the log is under its cap."""
        text = cut_line(text)
        size = len(text.encode("utf-8", "replace")) + 1
        with self._lock:
            over = self.cap_bytes is not None and (
                self.dropped_bytes or self.kept_bytes + size > self.cap_bytes)
            if over:
                self.dropped_bytes += size
                if self.dropped_bytes > size:
                    return
            else:
                self.kept_bytes += size
        if over:
            self._emit(f"[... log cut: the log reached its cap of {self.cap_bytes} bytes; "
                       "later output is not kept]")
            if self._on_full is not None:
                self._on_full()
            return
        self._emit(text)

    def _emit(self, text: str) -> None:
        with self._lock:
            self._file.write(text + "\n")
            self._file.flush()
            self.tail.append(text)
        if self._callback is not None:
            try:
                self._callback(text)
            except Exception:  # a broken telemetry sink must not fail the build
                self.callback_errors += 1

    def phase(self, text: str) -> None:
        """A line of the builder's own, marked so a reader tells it from build output."""
        self._emit(cut_line(f"==> [{time.strftime('%H:%M:%S')}] {text}"))

    def close(self) -> None:
        if self.dropped_bytes:
            self.phase(f"log cut: {self.dropped_bytes} bytes of output past the cap of "
                       f"{self.cap_bytes} bytes were not kept")
        with self._lock:
            self._file.close()
