"""The outbox: events leave only with their committed state change, in order, at least once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from events import outbox
from events.envelope import Event, new_event
from events.errors import BusError, PublishTimeout, UnroutableEvent
from events.inbox import INBOX_SCHEMA
from events.outbox import OUTBOX_SCHEMA, OutboxError, OutboxRelay, RelayPolicy
from events.payloads import BuildStarted
from events.sqlite import Database
from tests.unit.events.doubles import RecordingBusDouble

STATE = "CREATE TABLE builds (task_id INTEGER PRIMARY KEY, builder TEXT NOT NULL);"
MIGRATIONS = [OUTBOX_SCHEMA, INBOX_SCHEMA, STATE]
FAST = RelayPolicy(sweep_interval=30.0, backoff_base=0.001, backoff_max=0.01, park_after=3)


def started(task_id: int) -> Event[Any]:
    return new_event(BuildStarted(task_id=task_id, builder="b1", arch="x86_64"), source="test")


async def record_build(db: Database, event: Event[Any]) -> None:
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO builds VALUES (?, ?)", (event.data.task_id, event.data.builder)
        )
        await outbox.add(conn, event)


async def test_committed_events_are_published_in_order_and_removed(tmp_path: Path) -> None:
    bus = RecordingBusDouble()
    async with Database.open(tmp_path / "db", MIGRATIONS) as db, OutboxRelay(db, bus, FAST) as r:
        events = [started(i) for i in range(1, 51)]
        for event in events:
            await record_build(db, event)
            r.notify()
        await r.flush()
        assert [e.id for e in bus.published] == [e.id for e in events]
        assert bus.published[0] == events[0]
        assert await outbox.counts(db) == (0, 0)


async def test_notify_wakes_the_relay_without_waiting_for_a_sweep(tmp_path: Path) -> None:
    bus = RecordingBusDouble()
    policy = RelayPolicy(sweep_interval=3600.0)
    async with Database.open(tmp_path / "db", MIGRATIONS) as db, OutboxRelay(db, bus, policy) as r:
        await asyncio.sleep(0.01)  # the relay has swept once and now waits
        event = started(1)
        await record_build(db, event)
        r.notify()
        async with asyncio.timeout(10):  # generous: the sweep would take an hour
            await bus.published_signal.wait()
        assert [e.id for e in bus.published] == [event.id]


async def test_rolled_back_transaction_emits_nothing(tmp_path: Path) -> None:
    bus = RecordingBusDouble()
    async with Database.open(tmp_path / "db", MIGRATIONS) as db:
        with pytest.raises(RuntimeError):
            async with db.transaction() as conn:
                await outbox.add(conn, started(1))
                raise RuntimeError("state change failed")
        async with OutboxRelay(db, bus, FAST) as relay:
            await relay.flush()
        assert bus.published == []
        assert await db.fetchall("SELECT * FROM builds") == []


async def test_rows_left_by_a_previous_run_go_out_on_start(tmp_path: Path) -> None:
    path = tmp_path / "db"
    event = started(7)
    async with Database.open(path, MIGRATIONS) as db:
        await record_build(db, event)  # committed, but no relay ran
    bus = RecordingBusDouble()
    async with Database.open(path, MIGRATIONS) as db, OutboxRelay(db, bus, FAST) as relay:
        await relay.flush()
    assert [e.id for e in bus.published] == [event.id]


async def test_bus_failures_are_retried_in_order(tmp_path: Path) -> None:
    bus = RecordingBusDouble()
    bus.failures = [PublishTimeout("no confirm"), BusError("connection lost")]
    async with Database.open(tmp_path / "db", MIGRATIONS) as db:
        events = [started(1), started(2)]
        for event in events:
            await record_build(db, event)
        async with OutboxRelay(db, bus, FAST) as relay:
            await relay.flush()
            assert relay.published == 2
        assert [e.id for e in bus.published] == [e.id for e in events]
        assert await outbox.counts(db) == (0, 0)


async def test_unroutable_row_is_parked_not_dropped(tmp_path: Path) -> None:
    bus = RecordingBusDouble()
    async with Database.open(tmp_path / "db", MIGRATIONS) as db:
        stuck, behind = started(1), started(2)
        bus.refusals[stuck.id] = [UnroutableEvent("no queue bound") for _ in range(3)]
        await record_build(db, stuck)
        await record_build(db, behind)
        async with OutboxRelay(db, bus, FAST) as relay:
            await relay.flush()
            assert [e.id for e in bus.published] == [behind.id]
            assert await outbox.counts(db) == (0, 1)
            row = await db.fetchone("SELECT event_id, last_error FROM cairn_outbox")
            assert row is not None and row[0] == stuck.id and "no queue bound" in row[1]
            assert await outbox.unpark(db) == 1
            await relay.flush()
        assert [e.id for e in bus.published] == [behind.id, stuck.id]


class HeldConfirmsBusDouble(RecordingBusDouble):
    """Records each publish as sent at once and confirms none until ``release`` is set;
    ``all_sent`` once ``expected`` publishes are in flight together."""

    def __init__(self, expected: int) -> None:
        super().__init__()
        self.sent: list[str] = []
        self.expected = expected
        self.all_sent = asyncio.Event()
        self.release = asyncio.Event()

    async def publish(self, event: Event[Any], *, timeout: float | None = None) -> None:
        self.sent.append(event.id)
        if len(self.sent) == self.expected:
            self.all_sent.set()
        await self.release.wait()
        await super().publish(event, timeout=timeout)


async def test_a_batch_is_sent_in_order_before_any_confirm_is_awaited(tmp_path: Path) -> None:
    """Confirms are awaited together: a relay waiting for each before sending the next spent
    a broker round trip (and a quorum queue's disk write) per event."""
    events = [started(i) for i in range(1, 11)]
    bus = HeldConfirmsBusDouble(expected=len(events))
    async with Database.open(tmp_path / "db", MIGRATIONS) as db:
        for event in events:
            await record_build(db, event)
        async with OutboxRelay(db, bus, FAST) as relay:
            async with asyncio.timeout(10):  # a relay awaiting each confirm never sends 2
                await bus.all_sent.wait()  # none confirmed, and every one is in flight
            assert bus.sent == [e.id for e in events]
            assert bus.published == []
            assert await outbox.counts(db) == (10, 0)  # nothing deleted before its confirm
            bus.release.set()
            await relay.flush()
        assert [e.id for e in bus.published] == [e.id for e in events]
        assert await outbox.counts(db) == (0, 0)


async def test_check_reports_a_failing_bus(tmp_path: Path) -> None:
    bus = RecordingBusDouble()
    bus.failures = [BusError("broker down") for _ in range(1000)]
    async with Database.open(tmp_path / "db", MIGRATIONS) as db:
        await record_build(db, started(1))
        relay = OutboxRelay(db, bus, FAST)
        with pytest.raises(OutboxError, match="not running"):
            await relay.check()
        relay.start()
        await bus.failed_signal.wait()
        await asyncio.sleep(0.01)  # let the relay record the failure
        assert relay.last_error is not None
        with pytest.raises(OutboxError, match="broker down"):
            await relay.check(max_failing=0.0)
        await relay.stop(drain_timeout=0.05)  # gives up draining, keeps the row
        assert await outbox.counts(db) == (1, 0)


async def test_flush_requires_a_running_relay(tmp_path: Path) -> None:
    async with Database.open(tmp_path / "db", MIGRATIONS) as db:
        relay = OutboxRelay(db, RecordingBusDouble(), FAST)
        with pytest.raises(OutboxError, match="not running"):
            await relay.flush()
