"""Child processes that a fixture starts and ends by their own pid (never by name).

Each child is recorded (pid, start time, owner pid) in :data:`RECORDS` until it is stopped.
A test run that dies without its teardown (``pytest-timeout`` ends the process, a SIGKILL)
leaves its brokers running, in sessions of their own; the next run's first child sweeps
them: a recorded process whose owner is gone, and which is still the process that was
recorded (same start time), is killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

RECORDS = Path("/run/cairn-test-children" if os.geteuid() == 0
               else os.path.join(tempfile.gettempdir(), "cairn-test-children"))
_swept = False


def _started_at(pid: int) -> str | None:
    """The process's start time (clock ticks since boot), or None if there is none."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int) -> bool:
    return _started_at(pid) is not None


def sweep_stale_children() -> int:
    """Kill the recorded children of test runs that are gone; how many were killed."""
    killed = 0
    if not RECORDS.is_dir():
        return 0
    for record in RECORDS.glob("*.json"):
        try:
            data = json.loads(record.read_text())
        except (OSError, ValueError):
            continue
        if _alive(int(data.get("owner", 0))):
            continue
        pid = int(data.get("pid", 0))
        if pid > 0 and _started_at(pid) == data.get("started"):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
        with contextlib.suppress(FileNotFoundError):
            record.unlink()
    return killed


@dataclass
class Child:
    """One started process, its output in ``log``; ``netns`` runs it in a network namespace
    (``ip netns exec`` replaces itself with the command, so the pid is the command's)."""

    name: str
    argv: Sequence[str]
    log: Path
    env: Mapping[str, str] | None = None
    netns: str | None = None
    cwd: Path | None = None
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> Child:
        global _swept
        if not _swept:
            _swept = True
            sweep_stale_children()
        argv = list(self.argv)
        if self.netns is not None:
            argv = ["ip", "netns", "exec", self.netns, *argv]
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(argv, env=dict(self.env) if self.env else None,
                                          stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, cwd=self.cwd,
                                          start_new_session=True)
        self._record()
        return self

    @property
    def _record_path(self) -> Path:
        return RECORDS / f"{self.pid}.json"

    def _record(self) -> None:
        RECORDS.mkdir(parents=True, exist_ok=True)
        self._record_path.write_text(json.dumps({
            "owner": os.getpid(), "pid": self.pid, "started": _started_at(self.pid),
            "name": self.name}))

    def _forget(self) -> None:
        if self.popen is not None:
            with contextlib.suppress(FileNotFoundError):
                self._record_path.unlink()

    @property
    def pid(self) -> int:
        if self.popen is None:
            raise RuntimeError(f"{self.name} was never started")
        return self.popen.pid

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        if self.running:
            os.kill(self.pid, sig)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; the exit status (None if never started)."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
        status = self.popen.wait(timeout=timeout)
        self._forget()
        return status

    def kill(self) -> int | None:
        """SIGKILL, as a crash would; returns the exit status."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.popen.kill()
        status = self.popen.wait(timeout=30)
        self._forget()
        return status

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""
