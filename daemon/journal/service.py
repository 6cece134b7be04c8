"""The journal service: a durable queue bound to every event type, recorded into SQLite.

Bound per known type rather than ``#``, so that an event of an unknown type still finds no
queue and its publisher hears about it (mandatory publish) instead of the journal quietly
swallowing it.
"""

from __future__ import annotations

from typing import Any

import structlog

from daemon.journal.store import record
from events.bus import Bus, Consumer
from events.envelope import Event
from events.groupcommit import GroupCommit
from events.sqlite import Database
from events.topology import JOURNAL

log = structlog.get_logger("cairn.journal")

SUBSCRIPTION = JOURNAL


class Journal:
    """Records every event it is delivered; a duplicate (same id) changes nothing."""

    name = "journal"

    def __init__(self, bus: Bus, db: Database) -> None:
        self.bus = bus
        self.db = db
        self._consumer: Consumer | None = None
        self.recorded = 0
        #: Events delivered together are recorded in one transaction; each is acknowledged
        #: only once the transaction holding it committed.
        self.recorder: GroupCommit[Event[Any], bool] = GroupCommit(db, record)

    async def declare(self) -> None:
        await self.bus.declare(SUBSCRIPTION)

    async def start(self) -> None:
        self._consumer = await self.bus.subscribe(SUBSCRIPTION, self.handle)

    async def handle(self, event: Event[Any]) -> None:
        fresh = await self.recorder.submit(event)
        if fresh:
            self.recorded += 1
        log.debug("journal.recorded", fresh=fresh)

    async def stop(self, timeout: float = 10.0) -> None:
        if self._consumer is not None:
            await self._consumer.cancel(timeout)
            self._consumer = None

