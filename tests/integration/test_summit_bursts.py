"""Summit's group commit: events delivered together are applied in one transaction, each as
if alone (its inbox claim, decisions, outbox rows); a bad one fails alone, and the planners
never run ahead of what is stored."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from daemon.summit import store
from daemon.summit.daemon import SummitDaemon
from daemon.summit.scheduler import CONSUMER, Scheduler
from events import inbox
from events import payloads as p
from events.envelope import Event, new_event
from events.sqlite import Connection
from tests.support.summit import planned, running_summit


def seen(builder: str) -> Event[Any]:
    return new_event(p.BuilderSeen(builder=builder, arch="x86_64",
                                   state=p.BuilderState.ONLINE, boot="boot-1", slots=1,
                                   interval_s=60.0), source="test")


def poison() -> Event[Any]:
    return new_event(p.BuildDone(task_id=9999, attempt=1, builder="b1", source="nothing",
                                 version="1", release=1, build_release=1, arch="x86_64",
                                 outcome=p.Outcome.FAILED, reason="poison"), source="test")


def scheduler_of(daemon: SummitDaemon) -> Scheduler:
    assert daemon.service is not None
    return daemon.service.scheduler


async def burst(scheduler: Scheduler, events: list[Event[Any]]) -> list[Any]:
    """Handle ``events`` as one delivery burst: all arrive while the scheduler is busy."""
    async with scheduler.lock:
        handling = [asyncio.create_task(scheduler.handle(e)) for e in events]
        await asyncio.sleep(0.05)  # each is waiting to be applied
    return await asyncio.gather(*handling, return_exceptions=True)


async def stored_as_remembered(scheduler: Scheduler) -> bool:
    stored = {t.task_id: t for t in await store.load_tasks(scheduler.db)}
    return stored == {t.task_id: t for t in scheduler.all_tasks()}


async def test_a_burst_is_one_transaction_and_each_event_counts_once(tmp_path: Path) -> None:
    async with running_summit(tmp_path) as daemon:
        await planned(daemon)
        scheduler = scheduler_of(daemon)
        b1, b2 = seen("b1"), seen("b2")
        commits = scheduler.bursts.commits
        results = await burst(scheduler, [b1, b2, b1])  # b1 delivered twice
        assert results == [None, None, None]
        assert scheduler.bursts.commits == commits + 1
        assert set(scheduler.fleet.builders) == {"b1", "b2"}
        holders = sorted(t.builder for t in scheduler.all_tasks() if t.builder)
        assert holders == ["b1", "b2"]  # one slot each: the duplicate assigned nothing more
        assert await stored_as_remembered(scheduler)
        assert await inbox.seen(scheduler.db, CONSUMER, b2.id)


async def test_a_bad_event_fails_alone_and_the_planners_follow_the_store(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = store.record_build

    async def record_build(conn: Connection, done: p.BuildDone) -> None:
        if done.reason == "poison":
            raise ValueError("cannot record this build")
        await original(conn, done)

    monkeypatch.setattr(store, "record_build", record_build)
    async with running_summit(tmp_path) as daemon:
        await planned(daemon)
        scheduler = scheduler_of(daemon)
        b1, bad, b2 = seen("b1"), poison(), seen("b2")
        results = await burst(scheduler, [b1, bad, b2])
        assert results[0] is None and results[2] is None
        assert isinstance(results[1], ValueError)  # the bus retries or dead-letters it
        assert set(scheduler.fleet.builders) == {"b1", "b2"}
        assert sorted(t.builder for t in scheduler.all_tasks() if t.builder) == ["b1", "b2"]
        assert await stored_as_remembered(scheduler)
        assert not await inbox.seen(scheduler.db, CONSUMER, bad.id)
