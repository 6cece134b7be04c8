"""Running one build command: sandboxed, time-limited, cancellable, with a live log.

The command runs in its own session (so one ``killpg`` reaches everything it started) and,
when bubblewrap is used, in its own PID namespace with ``--die-with-parent``, so killing the
bwrap process takes every process of the build with it. Output (stdout and stderr merged)
is read line by line by a thread and handed to the build log as it is written.

Sandbox (bubblewrap): the host is mounted read-only (``--ro-bind / /``), ``/tmp`` is a fresh
tmpfs, ``/dev`` and ``/proc`` are private, the network, IPC, UTS and PID namespaces are new
(no network at all, not even the host's loopback), and only the directories the build may
write (work, install, deps) are bound writable at their own paths.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import BuildCancelled, BuildTimeout

_POLL_S = 0.1


@dataclass(frozen=True)
class Sandbox:
    """How to confine a command; ``bwrap`` is the bubblewrap binary or ``None`` for none."""

    bwrap: str | None
    writable: tuple[Path, ...] = ()

    def wrap(self, argv: Sequence[str], cwd: Path) -> list[str]:
        if self.bwrap is None:
            return list(argv)
        args = [
            self.bwrap,
            "--ro-bind", "/", "/",
            "--dev", "/dev",
            "--proc", "/proc",
            "--tmpfs", "/tmp",  # noqa: S108  (a fresh private tmpfs, not the host's /tmp)
            "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--die-with-parent", "--new-session",
        ]  # fmt: skip
        for path in self.writable:
            args += ["--bind", str(path), str(path)]
        return [*args, "--chdir", str(cwd), "--", *argv]


def find_bwrap() -> str | None:
    """The bubblewrap binary if installed."""
    return shutil.which("bwrap")


@dataclass(frozen=True)
class Limits:
    """When to stop: a monotonic deadline and an event set on cancellation."""

    deadline: float
    cancel: threading.Event
    kill_grace_s: float = 2.0


def _pump(stream: object, line: Callable[[str], None]) -> None:
    for raw in iter(stream.readline, b""):  # type: ignore[attr-defined]
        line(raw.decode("utf-8", "replace").rstrip("\r\n"))


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
    """Run ``argv``; return its exit status, or raise BuildTimeout/BuildCancelled."""
    proc = subprocess.Popen(
        sandbox.wrap(argv, cwd),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
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
