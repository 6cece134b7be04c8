"""Test doubles of the events ports, named as such: stand-ins that record what the code
under test did, for tests that are about that code and not about a broker."""

from __future__ import annotations

import asyncio
from typing import Any

from events.bus import PublishOnlyBus
from events.envelope import Event
from events.errors import BusError


class RecordingBusDouble(PublishOnlyBus):
    """Confirms every publish by recording it; ``failures`` are raised first, in order, and
    ``refusals`` for one event id (a broker refusing one message and taking the next)."""

    def __init__(self) -> None:
        self.published: list[Event[Any]] = []
        self.failures: list[BusError] = []
        self.refusals: dict[str, list[BusError]] = {}
        self.published_signal = asyncio.Event()
        self.failed_signal = asyncio.Event()

    async def publish(self, event: Event[Any], *, timeout: float | None = None) -> None:
        refusals = self.refusals.get(event.id)
        if self.failures or refusals:
            self.failed_signal.set()
            raise refusals.pop(0) if refusals else self.failures.pop(0)
        self.published.append(event)
        self.published_signal.set()
