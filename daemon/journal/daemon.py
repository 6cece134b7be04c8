"""``cairn journal``: the journal as its own daemon."""

from __future__ import annotations

from daemon.host import Host
from daemon.journal.service import Journal
from daemon.journal.store import MIGRATIONS
from daemon.metrics import ServiceMetrics
from daemon.runtime import BaseConfig, Health
from events.bus import Bus
from events.topology import JOURNAL


class JournalDaemon:
    """Connects, opens ``<state>/journal.sqlite``, records until stopped."""

    name = "journal"

    def __init__(self, config: BaseConfig, health: Health, bus: Bus | None = None) -> None:
        self.config = config
        self.health = health
        self._bus = bus
        self._host = Host(health)
        self.journal: Journal | None = None
        self.metrics = ServiceMetrics("journal")

    async def start(self) -> None:
        bus = await self._host.bus(self.config.bus.url, name="cairn-journal", bus=self._bus,
                                   metrics=self.metrics, queues=[JOURNAL.queue])
        db = await self._host.database(self.config.state.path("journal.sqlite"), MIGRATIONS)
        self.journal = Journal(bus, db)
        await self.journal.start()

    async def stop(self, timeout: float) -> None:
        if self.journal is not None:
            await self.journal.stop(timeout)
        await self._host.close()
