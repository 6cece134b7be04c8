"""A bus's observer hears about verdicts and publishes, and can never change them."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter as Tally
from typing import Any

from events.bus import BusObserver, Subscription
from events.envelope import Event, new_event
from events.errors import TransientError
from events.memory import MemoryBus
from events.names import binding
from events.payloads import CommitSeen


def commit(repository: str) -> Event[Any]:
    return new_event(CommitSeen(repository=repository, url=f"https://git.example/{repository}",
                                branch="main", new_commit="a" * 40), source="test")


class FailingObserverDouble(BusObserver):
    """An observer with a bug in every method."""

    def __init__(self) -> None:
        self.calls = 0

    def _fail(self) -> None:
        self.calls += 1
        raise RuntimeError("observer bug")

    def handled(self, event_type: str, queue: str) -> None:
        self._fail()

    def retried(self, event_type: str, queue: str) -> None:
        self._fail()

    def dead_lettered(self, event_type: str, queue: str) -> None:
        self._fail()

    def published(self, event_type: str, seconds: float) -> None:
        self._fail()

    def publish_failed(self, event_type: str) -> None:
        self._fail()


async def test_a_failing_observer_never_changes_what_the_bus_does() -> None:
    bus = MemoryBus()
    observer = FailingObserverDouble()
    bus.observe(observer)
    calls: Tally[str] = Tally()
    both_handled = asyncio.Event()

    async def handler(event: Event[Any]) -> None:
        calls[event.data.repository] += 1
        if calls[event.data.repository] == 1 and event.data.repository == "flaky":
            raise TransientError("once")
        if calls == {"fine": 1, "flaky": 2}:
            both_handled.set()

    async with bus:
        queue = f"test.observer.{uuid.uuid4().hex[:8]}"
        await bus.subscribe(
            Subscription(queue, (binding("commit-seen"),), retry_base_delay=0.001), handler
        )
        await bus.publish(commit("fine"))
        await bus.publish(commit("flaky"))
        await asyncio.wait_for(both_handled.wait(), 10)
        await asyncio.sleep(0.05)  # a redelivery, if the observer broke the verdict, shows here
        assert calls == {"fine": 1, "flaky": 2}
        assert await bus.dead_letters(queue) == []
        assert await bus.queue_depth(queue) == 0
    assert observer.calls == 5  # 2 published, 1 retried, 2 handled
