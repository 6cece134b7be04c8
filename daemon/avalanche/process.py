"""Running one build command: sandboxed, time-limited, cancellable, with a live log.

A command is stopped (its whole process group killed) when the build passes its deadline
(:class:`.errors.BuildTimeout`), is cancelled, prints nothing for longer than its silence
limit (:class:`.errors.BuildSilent`) or fills its log past a cap that fails the build
(:class:`.errors.LogLimitExceeded`, signalled by the log through ``Limits.log_full``) or
writes its install tree past the output cap (:class:`.errors.OutputLimitExceeded`, measured
every few tenths of a second by :mod:`.disk`). The
builder reaps the command itself (``wait4``) to learn what it consumed: CPU time and peak
memory of the command and every descendant it waited for (:class:`Meter`).

The command runs in its own session (so one ``killpg`` reaches everything it started) and,
sandboxed (:mod:`.sandbox`), in its own PID namespace with ``--die-with-parent``, so killing
the bwrap process takes every process of the build with it. Output (stdout and stderr merged)
is read line by line by a thread and handed to the build log as it is written; a line longer
than the log keeps is cut while it is read, so its length never costs the builder memory.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from .buildlog import LINE_MAX, cut_line
from .disk import DiskMeter
from .errors import BuildCancelled, BuildError, BuildSilent, BuildTimeout, LogLimitExceeded
from .sandbox import Sandbox, find_bwrap
from .usage import CommandUsage, Meter

__all__ = ["Limits", "Meter", "Sandbox", "find_bwrap", "run"]

_POLL_S = 0.1
#: Seconds between two readings of a command's process tree (:mod:`.usage`).
_SAMPLE_S = 0.25
#: Bytes of one line kept while reading (a UTF-8 character is at most four).
_LINE_BYTES = LINE_MAX * 4


@dataclass(frozen=True)
class Limits:
    """When to stop: a monotonic deadline, an event set on cancellation, the longest silence
    allowed, an event the log sets when it is full and the build must stop for it, and the
    build tree's sizes (its install tree against the output cap)."""

    deadline: float
    cancel: threading.Event
    kill_grace_s: float = 2.0
    silence_s: float | None = None
    log_full: threading.Event = field(default_factory=threading.Event)
    meter: Meter = field(default_factory=Meter)
    disk: DiskMeter = field(default_factory=DiskMeter)


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


def _reap(proc: subprocess.Popen[bytes], meter: CommandUsage) -> bool:
    """True once the command has exited; reaped here so that its usage is counted."""
    if proc.returncode is not None:
        return True
    try:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
    except ChildProcessError:  # reaped elsewhere: the usage is lost, the end is not
        proc.returncode = -1
        return True
    if pid == 0:
        return False
    proc.returncode = os.waitstatus_to_exitcode(status)
    meter.waited(usage)
    return True


def _wait(proc: subprocess.Popen[bytes], meter: CommandUsage, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while not _reap(proc, meter):
        if time.monotonic() >= end:
            return False
        time.sleep(0.02)
    return True


def _kill_group(proc: subprocess.Popen[bytes], grace: float, meter: CommandUsage
                ) -> None:
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            _wait(proc, meter, 5.0)
            return
        if not _wait(proc, meter, wait):
            continue
        # The leader is gone; make sure no straggler of the group survives it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        return


def _stop_reason(limits: Limits, last_output: float) -> BuildError | None:
    """Why the running command must be stopped now, or ``None``."""
    now = time.monotonic()
    if now >= limits.deadline:
        return BuildTimeout("the build outlived its time limit and was killed")
    if limits.cancel.is_set():
        return BuildCancelled("the build was cancelled and its processes were killed")
    if limits.log_full.is_set():
        return LogLimitExceeded("the build log passed its size cap and the build was killed")
    if limits.silence_s is not None and now - last_output > limits.silence_s:
        return BuildSilent(f"the build printed nothing for {limits.silence_s:g} s and was "
                           "killed")
    return limits.disk.poll()


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
    its exit status, or raise the :class:`.errors.BuildError` of the limit that stopped it."""
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
    last_output = [time.monotonic()]

    def heard(text: str) -> None:
        last_output[0] = time.monotonic()
        line(text)

    reader = threading.Thread(target=_pump, args=(proc.stdout, heard), daemon=True)
    reader.start()
    stopped: BuildError | None = None
    usage = CommandUsage()
    next_sample = 0.0
    try:
        while not _reap(proc, usage):
            if time.monotonic() >= next_sample:
                usage.sample(proc.pid)
                next_sample = time.monotonic() + _SAMPLE_S
            stopped = _stop_reason(limits, last_output[0])
            if stopped is not None:
                _kill_group(proc, limits.kill_grace_s, usage)
                break
            limits.cancel.wait(_POLL_S)
    finally:
        if not _reap(proc, usage):
            _kill_group(proc, 0, usage)
        usage.into(limits.meter)
        reader.join(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()
    if stopped is not None:
        raise stopped
    assert proc.returncode is not None
    return proc.returncode
