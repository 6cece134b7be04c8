"""A real daemon process under real signals, talking sd_notify to a socket the test binds.

The child (this file run as a program) is a tiny service driven by ``run_service``; the
test plays systemd: it binds an AF_UNIX datagram socket, passes it as ``NOTIFY_SOCKET``,
and reads what the service says and in which order.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import structlog

from daemon.runtime.config import load_config
from daemon.runtime.lifecycle import run_service
from daemon.runtime.logging import configure_logging
from daemon.runtime.sdnotify import Notifier
from events.bus import Subscription
from events.consume import process
from events.envelope import Event, encode_event, new_event
from events.payloads import BuildStarted

REPO = Path(__file__).resolve().parents[2]

# --- the child program ----------------------------------------------------------------


class ServiceDouble:
    """Behaves as ``mode`` says; reports its own steps on the notify socket as STATUS=."""

    name = "demo"

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.notifier = Notifier()
        self.failed = asyncio.Event()

    async def start(self) -> None:
        if self.mode == "hang-start":
            self.notifier.status("start-called")
            await asyncio.sleep(3600)
        event = new_event(BuildStarted(task_id=5, builder="b1", arch="x86_64"), source="demo")
        await process(encode_event(event), event.routing_key, Subscription("demo", ("#",)),
                      self._handle)
        if self.mode == "fail":
            asyncio.get_running_loop().call_later(0.05, self.failed.set)

    async def _handle(self, event: Event[Any]) -> None:
        structlog.get_logger("demo").info("demo.handled", task_id=event.data.task_id)

    async def wait(self) -> None:
        await self.failed.wait()
        raise RuntimeError("lost the database")

    async def stop(self, timeout: float) -> None:
        self.notifier.status("stop-called")
        if self.mode == "hang-stop":
            await asyncio.sleep(3600)
        await asyncio.sleep(0.05)  # drain "in-flight" work
        self.notifier.status("drained")


def child_main(mode: str) -> int:
    config = load_config(None)
    configure_logging(config.log, service="demo")
    return asyncio.run(run_service(ServiceDouble(mode), stop_timeout=60))


# --- the tests ------------------------------------------------------------------------


@dataclass
class Daemon:
    proc: asyncio.subprocess.Process
    sock: socket.socket

    async def message(self) -> str:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(30):
            return (await loop.sock_recv(self.sock, 4096)).decode()

    async def until(self, wanted: str) -> list[str]:
        """Every message up to and including the first that contains ``wanted``."""
        seen = [await self.message()]
        while wanted not in seen[-1]:
            seen.append(await self.message())
        return seen

    async def finish(self) -> tuple[int, list[dict[str, Any]]]:
        async with asyncio.timeout(30):
            _, stderr = await self.proc.communicate()
        assert self.proc.returncode is not None
        return self.proc.returncode, [json.loads(line) for line in stderr.splitlines()]


@asynccontextmanager
async def daemon(tmp_path: Path, mode: str, **env: str) -> AsyncIterator[Daemon]:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.setblocking(False)
        child_env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "NOTIFY_SOCKET": str(path),
            "CAIRN_LOG_LEVEL": "info",
            **env,
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            mode,
            cwd=REPO,
            env=child_env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            yield Daemon(proc, sock)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
async def test_signal_sends_stopping_first_then_exits_zero(
    tmp_path: Path, sig: signal.Signals
) -> None:
    async with daemon(tmp_path, "normal") as d:
        before = await d.until("READY=1")
        assert not any("STOPPING" in m for m in before)
        d.proc.send_signal(sig)
        after = await d.until("drained")
        code, logs = await d.finish()
    stopping = next(i for i, m in enumerate(after) if "STOPPING=1" in m)
    assert after.index("STATUS=stop-called") > stopping, after
    assert f"signal {sig.name}" in after[stopping]
    assert code == 0
    events = [entry["event"] for entry in logs]
    assert events.index("service.ready") < events.index("service.stopping")
    assert events[-1] == "service.stopped"
    assert all(entry["service"] == "demo" for entry in logs)


async def test_json_lines_carry_bound_event_ids(tmp_path: Path) -> None:
    async with daemon(tmp_path, "normal") as d:
        await d.until("READY=1")
        d.proc.send_signal(signal.SIGTERM)
        code, logs = await d.finish()
    assert code == 0
    (handled,) = [entry for entry in logs if entry["event"] == "demo.handled"]
    assert handled["task_id"] == 5
    assert handled["event_type"] == "build-started"
    assert handled["event_id"] and handled["correlation_id"] == handled["event_id"]
    assert handled["level"] == "info" and "timestamp" in handled
    assert not any("event_id" in entry for entry in logs if entry["event"] != "demo.handled")


async def test_watchdog_pings_at_half_the_interval(tmp_path: Path) -> None:
    async with daemon(tmp_path, "normal", WATCHDOG_USEC="100000") as d:
        await d.until("READY=1")
        pings = [await d.message() for _ in range(3)]
        d.proc.send_signal(signal.SIGTERM)
        await d.until("STOPPING=1")
        code, _ = await d.finish()
    assert pings == ["WATCHDOG=1"] * 3
    assert code == 0


async def test_signal_during_a_hanging_start(tmp_path: Path) -> None:
    async with daemon(tmp_path, "hang-start") as d:
        await d.until("start-called")
        d.proc.send_signal(signal.SIGTERM)
        messages = await d.until("drained")
        code, _ = await d.finish()
    assert not any("READY=1" in m for m in messages)
    assert "STOPPING=1" in messages[0]
    assert code == 0


async def test_second_signal_aborts_a_hanging_stop(tmp_path: Path) -> None:
    async with daemon(tmp_path, "hang-stop") as d:
        await d.until("READY=1")
        d.proc.send_signal(signal.SIGTERM)
        await d.until("stop-called")
        d.proc.send_signal(signal.SIGTERM)
        code, logs = await d.finish()
    assert code == 1
    assert "service.stop_aborted" in [entry["event"] for entry in logs]


async def test_service_failing_on_its_own_exits_non_zero(tmp_path: Path) -> None:
    async with daemon(tmp_path, "fail") as d:
        await d.until("READY=1")
        messages = await d.until("drained")
        code, logs = await d.finish()
    assert "STOPPING=1" in messages[0] and "service ended" in messages[0]
    assert code == 1
    (failed,) = [entry for entry in logs if entry["event"] == "service.failed"]
    assert "lost the database" in failed["error"]


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1]))
