"""Test helpers that ship with the code, for cairn's tests and for anyone extending it.

``captured_events`` listens to everything a block of code publishes::

    async with captured_events(bus) as seen:
        await service.handle(...)
    await seen.wait_for("task-ready", count=2)
    assert [e.data.source for e in seen.of_type("task-ready")] == ["a", "b"]

It binds a transient queue to every event type, so while it is active no publish is
unroutable: test unroutable behaviour outside of it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from events.bus import Bus, Subscription
from events.envelope import Event
from events.names import EventType, binding


class Captured:
    """The events seen so far, in arrival order."""

    def __init__(self) -> None:
        self.events: list[Event[Any]] = []
        self._changed = asyncio.Condition()

    async def add(self, event: Event[Any]) -> None:
        async with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    def of_type(self, event_type: str) -> list[Event[Any]]:
        return [e for e in self.events if e.type == event_type]

    async def wait_for(self, event_type: str, count: int = 1,
                       timeout: float = 10.0) -> list[Event[Any]]:
        """Wait until ``count`` events of a type were seen; fail with what was seen."""
        async def enough() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: len(self.of_type(event_type)) >= count)
        try:
            await asyncio.wait_for(enough(), timeout)
        except TimeoutError:
            seen = [f"{e.type}:{e.subject}" for e in self.events]
            raise AssertionError(
                f"expected {count} {event_type} event(s) within {timeout}s; saw {seen}"
            ) from None
        return self.of_type(event_type)


@asynccontextmanager
async def captured_events(bus: Bus, *types: str) -> AsyncIterator[Captured]:
    """Capture the events of the given types (all types if none) published on ``bus``."""
    captured = Captured()
    subscription = Subscription(
        queue=f"cairn.capture.{uuid.uuid4().hex[:12]}",
        bindings=tuple(binding(t) for t in (types or tuple(EventType))),
        prefetch=256,
        transient=True,
    )
    consumer = await bus.subscribe(subscription, captured.add)
    try:
        yield captured
    finally:
        await consumer.cancel(timeout=1.0)
