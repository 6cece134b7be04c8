"""The systemd notification protocol, spoken directly (no dependency needed).

A ``Type=notify`` unit is "started" only when the service says ``READY=1``, so dependants
never see a half-initialised service; ``STOPPING=1`` tells systemd a stop is under way (and
not a crash); ``WATCHDOG=1`` pings prove the event loop is still turning — a wedged loop
misses them and systemd restarts the service.

The protocol is one datagram per message on the AF_UNIX socket named by ``$NOTIFY_SOCKET``
(a path, or an abstract name written with a leading ``@``). Without the variable every call
is a no-op, so the same code runs under systemd, in a terminal and in tests.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Mapping

import structlog

log = structlog.get_logger("cairn.sdnotify")


class Notifier:
    """Sends sd_notify messages; built from the environment unless told otherwise."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.address = _address(env.get("NOTIFY_SOCKET", ""))
        self.watchdog_interval = _watchdog_interval(env)
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=value`` lines in one datagram; False when not sent (no socket, error).

        Errors are logged once and otherwise ignored: a service must not die because its
        supervisor's socket is gone.
        """
        if self.address is None:
            return False
        message = "\n".join(assignments).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message, self.address)
        except OSError as exc:
            if not self._warned:
                log.warning("sdnotify.failed", socket=str(self.address), error=str(exc))
                self._warned = True
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def stopping(self, status: str | None = None) -> bool:
        return self.notify("STOPPING=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    async def run_watchdog(self) -> None:
        """Ping at half the watchdog interval, from the event loop, until cancelled.

        Returns at once when systemd asked for no watchdog (or not for this process).
        """
        if self.watchdog_interval is None or not self.enabled:
            return
        period = self.watchdog_interval / 2
        while True:
            self.watchdog()
            await asyncio.sleep(period)


def _address(value: str) -> str | bytes | None:
    """``@name`` is an abstract socket (a leading NUL byte); anything else is a path."""
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    return value


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    """Seconds from ``$WATCHDOG_USEC``, if it is meant for this process (``$WATCHDOG_PID``)."""
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 1_000_000 if value > 0 else None
