"""Running one build command: sandboxed, time-limited, cancellable, with a live log.

The command runs in its own session (so one ``killpg`` reaches everything it started) and,
sandboxed (:mod:`.sandbox`), in its own PID namespace with ``--die-with-parent``, so killing
the bwrap process takes every process of the build with it. Output (stdout and stderr merged)
is read line by line by a thread and handed to the build log as it is written; a line longer
than the log keeps is cut while it is read, so its length never costs the builder memory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .buildlog import LINE_MAX, cut_line
from .errors import BuildCancelled, BuildTimeout
from .sandbox import Sandbox, find_bwrap

__all__ = ["Limits", "Sandbox", "find_bwrap", "run"]

_POLL_S = 0.1
#: Bytes of one line kept while reading (a UTF-8 character is at most four).
_LINE_BYTES = LINE_MAX * 4


@dataclass(frozen=True)
class Limits:
    """When to stop: a monotonic deadline and an event set on cancellation."""

    deadline: float
    cancel: threading.Event
    kill_grace_s: float = 2.0


def _pump(stream: IO[bytes], line: Callable[[str], None]) -> None:
    """Hand each line of ``stream`` to ``line``; keep at most ``_LINE_BYTES`` of one line."""
    while raw := stream.readline(_LINE_BYTES):
        dropped = 0
        if not raw.endswith(b"\n"):
            while (more := stream.readline(_LINE_BYTES)) and not more.endswith(b"\n"):
                dropped += len(more)
            dropped += len(more.rstrip(b"\r\n"))
        text = raw.decode("utf-8", "replace").rstrip("\r\n")
        line(cut_line(text, dropped))


def _kill_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            # The leader is gone; make sure no straggler of the group survives it.
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue
        return


def run(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    sandbox: Sandbox,
    limits: Limits,
    line: Callable[[str], None],
) -> int:
    """Run ``argv`` in ``cwd`` (a host path; the sandbox shows it at its inside path); return
    its exit status, or raise BuildTimeout/BuildCancelled."""
    proc = subprocess.Popen(
        sandbox.command(list(argv), sandbox.inside(cwd)),
        cwd=cwd if sandbox.bwrap is None else "/",
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        **sandbox.spawn_options(),
    )
    reader = threading.Thread(target=_pump, args=(proc.stdout, line), daemon=True)
    reader.start()
    stopped: type[BuildTimeout] | type[BuildCancelled] | None = None
    try:
        while proc.poll() is None:
            remaining = limits.deadline - time.monotonic()
            if remaining <= 0:
                stopped = BuildTimeout
            elif limits.cancel.wait(min(_POLL_S, remaining)):
                stopped = BuildCancelled
            if stopped is not None:
                _kill_group(proc, limits.kill_grace_s)
                break
    finally:
        if proc.poll() is None:
            _kill_group(proc, 0)
        reader.join(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()
    if stopped is BuildTimeout:
        raise BuildTimeout("the build outlived its time limit and was killed")
    if stopped is BuildCancelled:
        raise BuildCancelled("the build was cancelled and its processes were killed")
    return proc.returncode
