"""The inbox: an effect and its event id commit together, so a redelivery applies nothing."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from events import inbox, outbox
from events.bus import Subscription
from events.envelope import Event, new_event
from events.inbox import INBOX_SCHEMA, apply_once, claim
from events.outbox import OUTBOX_SCHEMA, OutboxRelay, RelayPolicy
from events.payloads import BuildStarted
from events.sqlite import Connection, Database

COUNTER = "CREATE TABLE counter (task_id INTEGER PRIMARY KEY, n INTEGER NOT NULL);"
MIGRATIONS = [INBOX_SCHEMA, COUNTER]


def started(task_id: int) -> Event[Any]:
    return new_event(BuildStarted(task_id=task_id, builder="b1", arch="x86_64"), source="test")


async def bump(conn: Connection, task_id: int) -> None:
    """A deliberately non-idempotent effect: applying it twice shows as n == 2."""
    await conn.execute(
        "INSERT INTO counter VALUES (?, 1) ON CONFLICT (task_id) DO UPDATE SET n = n + 1",
        (task_id,),
    )


async def counts(db: Database) -> dict[int, int]:
    return {r[0]: r[1] for r in await db.fetchall("SELECT task_id, n FROM counter")}


async def test_claim_is_true_once_per_consumer(tmp_path: Path) -> None:
    async with Database.open(tmp_path / "db", MIGRATIONS) as db:
        async with db.transaction() as conn:
            assert await claim(conn, "summit", "e1") is True
            assert await claim(conn, "summit", "e1") is False
            assert await claim(conn, "journal", "e1") is True
        async with db.transaction() as conn:
            assert await claim(conn, "summit", "e1") is False
        assert await inbox.seen(db, "summit", "e1")
        assert not await inbox.seen(db, "summit", "e2")


async def test_duplicates_apply_once(tmp_path: Path) -> None:
    event = started(3)
    async with Database.open(tmp_path / "db", MIGRATIONS) as db:
        results = [await apply_once(db, "summit", event, lambda c: bump(c, 3)) for _ in range(3)]
        assert results == [True, False, False]
        assert await counts(db) == {3: 1}


async def test_failed_effect_releases_the_claim(tmp_path: Path) -> None:
    event = started(4)

    async def failing(conn: Connection) -> None:
        await bump(conn, 4)
        raise RuntimeError("disk full")

    async with Database.open(tmp_path / "db", MIGRATIONS) as db:
        with pytest.raises(RuntimeError):
            await apply_once(db, "summit", event, failing)
        assert not await inbox.seen(db, "summit", event.id)
        assert await counts(db) == {}
        assert await apply_once(db, "summit", event, lambda c: bump(c, 4)) is True
        assert await counts(db) == {4: 1}


async def test_prune_forgets_only_old_ids(tmp_path: Path) -> None:
    async with Database.open(tmp_path / "db", MIGRATIONS) as db:
        async with db.transaction() as conn:
            await claim(conn, "summit", "new")
            await conn.execute(
                "INSERT INTO cairn_inbox VALUES ('summit', 'old', ?)", (time.time() - 3600,)
            )
        assert await inbox.prune(db, older_than=60) == 1
        assert await inbox.seen(db, "summit", "new")
        assert not await inbox.seen(db, "summit", "old")


async def test_outbox_to_inbox_over_the_embedded_bus(tmp_path: Path) -> None:
    """Producer outbox → embedded bus → consumer inbox; a republished event applies once."""
    memory = pytest.importorskip("events.memory")
    events = [started(i) for i in range(1, 6)]
    sub = Subscription("test.consumer", ("build-started.*",), retry_base_delay=0.001)
    async with (
        Database.open(tmp_path / "producer", [OUTBOX_SCHEMA]) as producer,
        Database.open(tmp_path / "consumer", MIGRATIONS) as consumer,
        memory.MemoryBus() as bus,
    ):
        handled = asyncio.Queue[str]()

        async def handler(event: Event[Any]) -> None:
            await apply_once(consumer, sub.queue, event, lambda c: bump(c, event.data.task_id))
            handled.put_nowait(event.id)

        await bus.subscribe(sub, handler)
        async with OutboxRelay(producer, bus, RelayPolicy(sweep_interval=30)) as relay:
            for event in [*events, events[0], events[2]]:  # two republished duplicates
                async with producer.transaction() as conn:
                    await conn.execute("DELETE FROM cairn_outbox WHERE event_id = ?", (event.id,))
                    await outbox.add(conn, event)
                relay.notify()
                await relay.flush()
        async with asyncio.timeout(10):
            ids = [await handled.get() for _ in range(7)]
        assert sorted(ids) == sorted([e.id for e in events] + [events[0].id, events[2].id])
        assert await counts(consumer) == {i: 1 for i in range(1, 6)}
