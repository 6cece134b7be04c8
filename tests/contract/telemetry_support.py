"""What the telemetry contract tests need from a transport, independent of which it is.

A :class:`TelemetryTransport` opens started telemetry clients (for the in-process one they
are all the same :class:`MemoryTelemetry`, as every service of ``cairn up`` shares it; for
MQTT each is its own connection) and stops them after the test. :class:`Watch` collects what
one subscription receives, so a test can wait for it without sleeping.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import os
import uuid
from collections.abc import Callable

from events.errors import TelemetryError
from events.telemetry import MemoryTelemetry, Message, MqttTelemetry, Telemetry

MQTT_URL = os.environ.get("CAIRN_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")
#: A probe line: published until a watcher sees one, so that it is known to be subscribed.
PROBE = b"\x00probe"


class TelemetryTransport(abc.ABC):
    name: str

    def __init__(self) -> None:
        self.opened: list[Telemetry] = []
        self.watches: list[Watch] = []

    @abc.abstractmethod
    def _new(self, client_id: str, will: Message | None) -> Telemetry: ...

    async def open(self, *, will: Message | None = None) -> Telemetry:
        """A started client, connected (its ``check`` passes)."""
        telemetry = self._new(f"contract-{uuid.uuid4().hex[:8]}", will)
        await telemetry.start()
        self.opened.append(telemetry)
        await until_checked(telemetry, healthy=True)
        return telemetry

    def watch(self, telemetry: Telemetry, pattern: str) -> Watch:
        watch = Watch(telemetry, pattern)
        self.watches.append(watch)
        return watch

    async def aclose(self) -> None:
        for watch in self.watches:
            await watch.stop()
        for telemetry in self.opened:
            await telemetry.stop()


class MemoryTelemetryTransport(TelemetryTransport):
    name = "memory"

    def __init__(self) -> None:
        super().__init__()
        self.shared = MemoryTelemetry()

    def _new(self, client_id: str, will: Message | None) -> Telemetry:
        return self.shared


class MqttTelemetryTransport(TelemetryTransport):
    name = "mqtt"

    def __init__(self, url: str = MQTT_URL) -> None:
        super().__init__()
        self.url = url

    def _new(self, client_id: str, will: Message | None) -> Telemetry:
        return MqttTelemetry(self.url, client_id=client_id, will=will, reconnect_delay=0.2)


async def check_result(telemetry: Telemetry) -> str:
    try:
        await telemetry.check()
    except TelemetryError as exc:
        return str(exc)
    return "ok"


async def until_checked(telemetry: Telemetry, *, healthy: bool, within: float = 10.0) -> str:
    """Poll ``check`` until it passes (or fails); fail the test if it does not in time."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        said = await check_result(telemetry)
        if (said == "ok") == healthy:
            return said
        if loop.time() > deadline:
            raise AssertionError(f"check still says {said!r} after {within}s")
        await asyncio.sleep(0.05)


class Watch:
    """One subscription's messages, as they arrive."""

    def __init__(self, telemetry: Telemetry, pattern: str) -> None:
        self.messages: list[Message] = []
        self._changed = asyncio.Condition()
        self._task = asyncio.create_task(self._run(telemetry, pattern))

    async def _run(self, telemetry: Telemetry, pattern: str) -> None:
        async for message in telemetry.subscribe(pattern):
            async with self._changed:
                self.messages.append(message)
                self._changed.notify_all()

    def payloads(self, topic: str) -> list[bytes]:
        """What arrived on ``topic``, probes left out."""
        return [m.payload for m in self.messages if m.topic == topic and m.payload != PROBE]

    async def until(self, ready: Callable[[], bool], what: str, within: float = 15.0) -> None:
        async def wait() -> None:
            async with self._changed:
                await self._changed.wait_for(ready)

        try:
            await asyncio.wait_for(wait(), within)
        except TimeoutError:
            seen = [(m.topic, m.payload[:40]) for m in self.messages[-10:]]
            raise AssertionError(f"{what}: not within {within}s; last seen {seen}") from None

    async def subscribed(self, publisher: Telemetry, topic: str) -> None:
        """Publish probes on ``topic`` until one arrives: from then on, this watch gets
        whatever is published there."""
        async def probe() -> None:
            while True:
                publisher.publish(topic, PROBE)
                await asyncio.sleep(0.1)

        prober = asyncio.create_task(probe())
        try:
            await self.until(lambda: any(m.topic == topic and m.payload == PROBE
                                         for m in self.messages), f"a probe on {topic}")
        finally:
            prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await prober

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
