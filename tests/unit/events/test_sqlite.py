"""The Database wrapper: transactions commit or roll back whole, never interleave, migrate."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from events.sqlite import Database, DatabaseError

SCHEMA = ["CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL);"]


async def test_commit_and_rollback(tmp_path: Path) -> None:
    async with Database.open(tmp_path / "db.sqlite", SCHEMA) as db:
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO t VALUES ('a', 1)")
        with pytest.raises(RuntimeError):
            async with db.transaction() as conn:
                await conn.execute("INSERT INTO t VALUES ('b', 2)")
                raise RuntimeError("boom")
        rows = await db.fetchall("SELECT k, v FROM t ORDER BY k")
        assert [tuple(r) for r in rows] == [("a", 1)]


async def test_pragmas(tmp_path: Path) -> None:
    async with Database.open(tmp_path / "sub" / "db.sqlite") as db:
        mode = await db.fetchone("PRAGMA journal_mode")
        fk = await db.fetchone("PRAGMA foreign_keys")
        busy = await db.fetchone("PRAGMA busy_timeout")
        assert mode is not None and mode[0] == "wal"
        assert fk is not None and fk[0] == 1
        assert busy is not None and busy[0] == 5000


async def test_transactions_do_not_interleave(tmp_path: Path) -> None:
    """Two coroutines read-modify-write the same row; the lock keeps every increment."""
    async with Database.open(tmp_path / "db.sqlite", SCHEMA) as db:
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO t VALUES ('n', 0)")

        async def bump() -> None:
            for _ in range(20):
                async with db.transaction() as conn:
                    async with conn.execute("SELECT v FROM t WHERE k = 'n'") as cur:
                        row = await cur.fetchone()
                    assert row is not None
                    await asyncio.sleep(0)  # give the other coroutine every chance
                    await conn.execute("UPDATE t SET v = ? WHERE k = 'n'", (row[0] + 1,))

        await asyncio.gather(bump(), bump(), bump())
        row = await db.fetchone("SELECT v FROM t WHERE k = 'n'")
        assert row is not None and row[0] == 60


async def test_reader_does_not_see_uncommitted_rows(tmp_path: Path) -> None:
    async with Database.open(tmp_path / "db.sqlite", SCHEMA) as db:
        inserted = asyncio.Event()
        release = asyncio.Event()

        async def writer() -> None:
            async with db.transaction() as conn:
                await conn.execute("INSERT INTO t VALUES ('x', 1)")
                inserted.set()
                await release.wait()
                raise RuntimeError("roll back")

        task = asyncio.create_task(writer())
        await inserted.wait()
        reader = asyncio.create_task(db.fetchall("SELECT * FROM t"))
        await asyncio.sleep(0.01)
        release.set()
        with pytest.raises(RuntimeError):
            await task
        assert await reader == []


async def test_nested_transaction_is_refused(tmp_path: Path) -> None:
    async with Database.open(tmp_path / "db.sqlite", SCHEMA) as db, db.transaction():
        with pytest.raises(DatabaseError, match="nested transaction"):
            async with db.transaction():
                pass


async def test_migrations_apply_once_and_in_order(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    first = ["CREATE TABLE a (x INTEGER); INSERT INTO a VALUES (1);"]
    async with Database.open(path, first) as db:
        assert await db.user_version() == 1
    second = [*first, "INSERT INTO a VALUES (2);\nCREATE TABLE b (y TEXT);"]
    async with Database.open(path, second) as db:
        assert await db.user_version() == 2
        rows = await db.fetchall("SELECT x FROM a ORDER BY x")
        assert [r[0] for r in rows] == [1, 2]
    with pytest.raises(DatabaseError, match="schema version 2 but this program knows only 1"):
        async with Database.open(path, first):
            pass


async def test_failed_migration_rolls_back(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    bad = ["CREATE TABLE a (x INTEGER); INSERT INTO nowhere VALUES (1);"]
    with pytest.raises(DatabaseError, match=r"migration 1 .* failed: no such table: nowhere"):
        async with Database.open(path, bad):
            pass
    async with Database.open(path) as db:
        assert await db.user_version() == 0
        assert await db.fetchall("SELECT name FROM sqlite_master WHERE name = 'a'") == []


async def test_a_task_cancelled_at_any_point_of_a_transaction_leaves_it_usable(
        tmp_path: Path) -> None:
    """A consumer torn down mid-handler (broker restart) cancels its task wherever it is:
    awaiting BEGIN, inside the block, or awaiting COMMIT. The next transaction must work and
    the cancelled one must not have written anything."""
    async with Database.open(tmp_path / "c.sqlite", ["CREATE TABLE t (x INTEGER)"]) as db:
        for ticks in range(12):
            async def writer() -> None:
                async with db.transaction() as conn:
                    await conn.execute("INSERT INTO t VALUES (1)")
                    await asyncio.sleep(10)

            task = asyncio.create_task(writer())
            for _ in range(ticks):
                await asyncio.sleep(0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            async with db.transaction() as conn:
                await conn.execute("INSERT INTO t VALUES (2)")
        rows = await db.fetchall("SELECT x FROM t")
        assert [r["x"] for r in rows] == [2] * 12
