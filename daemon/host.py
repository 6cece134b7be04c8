"""What a daemon process owns — bus connection, databases, outbox relays — opened in order
at start and closed in reverse at stop, whatever fails in between."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from pathlib import Path

from events.bus import Bus
from events.connect import bus_from_url
from events.outbox import OutboxRelay
from events.sqlite import Database


class Host:
    """An exit stack with typed helpers for the resources cairn's services use."""

    def __init__(self) -> None:
        self._stack = AsyncExitStack()

    async def bus(self, url: str | Sequence[str], *, name: str, publish_timeout: float = 10.0,
                  bus: Bus | None = None) -> Bus:
        """Connect a bus (or adopt a given one, e.g. the embedded bus of ``cairn up``)."""
        connected = bus if bus is not None else bus_from_url(
            url, name=name, publish_timeout=publish_timeout)
        await connected.connect()
        self._stack.push_async_callback(connected.close)
        return connected

    async def database(self, path: Path, migrations: Sequence[str]) -> Database:
        return await self._stack.enter_async_context(Database.open(path, migrations))

    async def relay(self, db: Database, bus: Bus) -> OutboxRelay:
        relay = OutboxRelay(db, bus)
        relay.start()
        self._stack.push_async_callback(relay.stop)
        return relay

    def on_close(self, callback: Callable[[], Awaitable[object]]) -> None:
        """Run ``callback`` at close, before what was opened earlier is closed."""
        self._stack.push_async_callback(callback)

    async def close(self) -> None:
        await self._stack.aclose()
