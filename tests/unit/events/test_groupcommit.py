"""Group commit: items submitted together share a transaction, each submitter returns only
after its item committed, and a bad item fails alone."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from events.groupcommit import GroupCommit
from events.sqlite import Connection, Database

SCHEMA = ["CREATE TABLE t (k TEXT PRIMARY KEY);"]


async def insert(conn: Connection, key: str) -> str:
    if key == "bad":
        raise ValueError("a bad item")
    await conn.execute("INSERT INTO t VALUES (?)", (key,))
    return key.upper()


async def keys(db: Database) -> list[str]:
    return [r[0] for r in await db.fetchall("SELECT k FROM t ORDER BY k")]


async def test_an_idle_submit_commits_at_once(tmp_path: Path) -> None:
    async with Database.open(tmp_path / "db.sqlite", SCHEMA) as db:
        group = GroupCommit(db, insert)
        assert await group.submit("a") == "A"
        assert group.commits == 1 and await keys(db) == ["a"]


async def test_items_submitted_together_share_transactions(tmp_path: Path) -> None:
    async with Database.open(tmp_path / "db.sqlite", SCHEMA) as db:
        group = GroupCommit(db, insert)
        names = [f"k{i:02d}" for i in range(50)]
        results = await asyncio.gather(*(group.submit(n) for n in names))
        assert results == [n.upper() for n in names]
        assert await keys(db) == names
        assert group.commits < 10  # the first alone, then the rest in a few groups


async def test_a_bad_item_fails_alone(tmp_path: Path) -> None:
    async with Database.open(tmp_path / "db.sqlite", SCHEMA) as db:
        group = GroupCommit(db, insert)
        first = asyncio.create_task(group.submit("first"))
        others = [asyncio.create_task(group.submit(k)) for k in ("a", "bad", "b")]
        assert await first == "FIRST"
        results = await asyncio.gather(*others, return_exceptions=True)
        assert results[0] == "A" and results[2] == "B"
        assert isinstance(results[1], ValueError)
        assert await keys(db) == ["a", "b", "first"]


async def test_a_failing_lone_item_raises(tmp_path: Path) -> None:
    async with Database.open(tmp_path / "db.sqlite", SCHEMA) as db:
        group = GroupCommit(db, insert)
        with pytest.raises(ValueError, match="a bad item"):
            await group.submit("bad")
        assert await group.submit("after") == "AFTER"


async def test_a_failed_group_is_undone_under_the_guard_before_items_go_alone(
        tmp_path: Path) -> None:
    """What a service keeps in memory beside the database ran ahead with the failed group:
    ``undo`` rebuilds it, holding the guard, before anything else is applied."""
    async with Database.open(tmp_path / "db.sqlite", SCHEMA) as db:
        guard = asyncio.Lock()
        memory: list[str] = []
        undone: list[list[str]] = []

        async def remember(conn: Connection, key: str) -> str:
            assert guard.locked()
            memory.append(key)
            return await insert(conn, key)

        async def undo() -> None:
            assert guard.locked()
            undone.append(list(memory))
            memory[:] = await keys(db)

        group = GroupCommit(db, remember, guard=lambda: guard, undo=undo)
        async with guard:  # everything submitted meanwhile goes in one group
            tasks = [asyncio.create_task(group.submit(k)) for k in ("a", "bad", "b")]
            await asyncio.sleep(0.01)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert results[0] == "A" and results[2] == "B" and isinstance(results[1], ValueError)
        # the group, then "bad" alone, each undone; "a" and "b" alone committed
        assert undone == [["a", "bad"], ["a", "bad"]]
        assert memory == ["a", "b"] and await keys(db) == ["a", "b"]
        assert group.commits == 2
