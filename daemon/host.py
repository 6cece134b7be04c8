"""What a daemon process owns — bus connection, telemetry, databases, outbox relays —
opened in order at start and closed in reverse at stop, whatever fails in between.

Every daemon starts the same way, written here once: connect the bus (counting its traffic
and watching its queues in the service's metrics), open its database with an outbox relay
when it emits events, open telemetry when it needs it.

Each connection it opens is also registered as a readiness check of the service's
:class:`~daemon.runtime.health.Health` (``bus``, ``mqtt``, ``outbox``), so no daemon can
open one and forget to report it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from pathlib import Path

from daemon.metrics import ServiceMetrics
from daemon.runtime.health import Health
from events.bus import Bus
from events.connect import bus_from_url
from events.outbox import OutboxRelay
from events.sqlite import Database
from events.telemetry import Message, Telemetry, telemetry_from_url


class Host:
    """An exit stack with typed helpers for the resources cairn's services use."""

    def __init__(self, health: Health | None = None) -> None:
        self._stack = AsyncExitStack()
        self._health = health

    def _check(self, name: str, check: Callable[[], Awaitable[object]]) -> None:
        if self._health is not None:
            self._health.add_check(name, check)

    async def bus(self, url: str | Sequence[str], *, name: str, publish_timeout: float = 10.0,
                  bus: Bus | None = None, metrics: ServiceMetrics | None = None,
                  queues: Sequence[str] = ()) -> Bus:
        """Connect a bus (or adopt a given one, e.g. the embedded bus of ``cairn up``); its
        verdicts and publishes, and the depth of ``queues``, go to ``metrics``."""
        connected = bus if bus is not None else bus_from_url(
            url, name=name, publish_timeout=publish_timeout)
        await connected.connect()
        self._stack.push_async_callback(connected.close)
        self._check("bus", connected.check)
        if metrics is not None:
            metrics.attach(connected)
            if queues:
                metrics.watch_queues(connected, list(queues))
        return connected

    async def telemetry(self, url: str | None, *, client_id: str,
                        will: Message | None = None) -> Telemetry:
        """Start live telemetry (MQTT, or in process for ``memory://``)."""
        telemetry = telemetry_from_url(url, client_id=client_id, will=will)
        await telemetry.start()
        self._stack.push_async_callback(telemetry.stop)
        self._check("mqtt", telemetry.check)
        return telemetry

    async def database(self, path: Path, migrations: Sequence[str]) -> Database:
        return await self._stack.enter_async_context(Database.open(path, migrations))

    async def outbox_database(self, path: Path, migrations: Sequence[str],
                              bus: Bus) -> tuple[Database, OutboxRelay]:
        """The database of a service that emits events, with the relay of its outbox."""
        db = await self.database(path, migrations)
        return db, await self.relay(db, bus)

    async def relay(self, db: Database, bus: Bus) -> OutboxRelay:
        relay = OutboxRelay(db, bus)
        relay.start()
        self._stack.push_async_callback(relay.stop)
        self._check("outbox", relay.check)
        return relay

    def on_close(self, callback: Callable[[], Awaitable[object]]) -> None:
        """Run ``callback`` at close, before what was opened earlier is closed."""
        self._stack.push_async_callback(callback)

    async def close(self) -> None:
        await self._stack.aclose()
