"""One SQLite database per service, reached through one aiosqlite connection.

Why one connection and a lock: SQLite serialises writers anyway, and a single connection
shared by coroutines would otherwise let two of them interleave statements inside the same
transaction (one coroutine's ``COMMIT`` committing the other's half-done work). Every
transaction therefore holds an :class:`asyncio.Lock` from ``BEGIN`` to ``COMMIT``, and reads
take the same lock so they never see another coroutine's uncommitted rows.

Why ``BEGIN IMMEDIATE``: the write lock is taken at the start, so a transaction never fails
half-way with ``SQLITE_BUSY`` when it upgrades from reading to writing (another process — a
CLI tool, a second service instance by mistake — waits up to the busy timeout instead).

Why ``Database.open`` is a context manager: an aiosqlite connection owns a non-daemon
thread; one left open keeps the interpreter from exiting. The context manager always closes
it, whatever happens inside.

Schema migrations are a list of SQL scripts applied in order; ``PRAGMA user_version`` holds
how many have been applied. The list is append-only: never edit or reorder a script that
has shipped, add a new one.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from events.errors import CairnError

#: Seconds a writer waits for another process's lock before failing with "database is locked".
DEFAULT_BUSY_TIMEOUT = 5.0

Row = sqlite3.Row
Connection = aiosqlite.Connection


class DatabaseError(CairnError):
    """The database cannot be opened, migrated or used as asked."""


class Database:
    """A service's SQLite database: one connection, serialised transactions, migrations.

    Build it with :meth:`open`; use :meth:`transaction` to write and :meth:`read` to read.
    """

    def __init__(self, conn: aiosqlite.Connection, path: str) -> None:
        self._conn = conn
        self.path = path
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        path: str | Path,
        migrations: Sequence[str] = (),
        *,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    ) -> AsyncIterator[Database]:
        """Open (creating it and its directory if needed), migrate, and always close."""
        target = str(path)
        if target != ":memory:":
            try:
                Path(target).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseError(f"cannot create the directory of {target}: {exc}") from exc
        try:
            conn = await aiosqlite.connect(target, isolation_level=None)
        except sqlite3.Error as exc:
            raise DatabaseError(f"cannot open database {target}: {exc}") from exc
        try:
            conn.row_factory = sqlite3.Row
            await _configure(conn, target, busy_timeout)
            db = cls(conn, target)
            await db.migrate(migrations)
            yield db
        finally:
            await conn.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """A write transaction: ``BEGIN IMMEDIATE``, commit on exit, roll back on error.

        Transactions do not nest: opening one inside another (same task) raises
        :class:`DatabaseError` instead of deadlocking on the lock.
        """
        async with self._locked():
            await _rollback(self._conn)
            try:
                await self._conn.execute("BEGIN IMMEDIATE")
                yield self._conn
                await self._conn.commit()
            except BaseException:
                await asyncio.shield(_recover(self._conn))
                raise

    @asynccontextmanager
    async def read(self) -> AsyncIterator[aiosqlite.Connection]:
        """A read-only snapshot (deferred transaction) that no writer can interleave with."""
        async with self._locked():
            await _rollback(self._conn)
            try:
                await self._conn.execute("BEGIN")
                yield self._conn
            finally:
                await asyncio.shield(_recover(self._conn))

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        """Run one query in its own read snapshot and return every row."""
        async with self.read() as conn, conn.execute(sql, tuple(params)) as cursor:
            return list(await cursor.fetchall())

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        """Run one query in its own read snapshot and return the first row, if any."""
        async with self.read() as conn, conn.execute(sql, tuple(params)) as cursor:
            row: Row | None = await cursor.fetchone()
            return row

    async def user_version(self) -> int:
        row = await self.fetchone("PRAGMA user_version")
        return int(row[0]) if row is not None else 0

    async def migrate(self, migrations: Sequence[str]) -> int:
        """Apply the scripts not yet applied, each in its own transaction; return the version.

        A database newer than the code (more scripts applied than it knows) is refused: the
        code would misread tables it does not know about.
        """
        current = await self.user_version()
        if current > len(migrations):
            raise DatabaseError(
                f"{self.path} is at schema version {current} but this program knows only "
                f"{len(migrations)} migrations: run a newer cairn or restore a matching backup"
            )
        for version, script in enumerate(migrations[current:], start=current + 1):
            async with self.transaction() as conn:
                try:
                    for statement in _statements(script):
                        await conn.execute(statement)
                except sqlite3.Error as exc:
                    raise DatabaseError(
                        f"migration {version} of {self.path} failed: {exc}"
                    ) from exc
                await conn.execute(f"PRAGMA user_version = {version:d}")
        return len(migrations)

    @asynccontextmanager
    async def _locked(self) -> AsyncIterator[None]:
        task = asyncio.current_task()
        if task is not None and self._owner is task:
            raise DatabaseError(
                "nested transaction on one database: finish the outer transaction first "
                "(pass its connection down instead of opening another)"
            )
        async with self._lock:
            self._owner = task
            try:
                yield
            finally:
                self._owner = None


async def _configure(conn: aiosqlite.Connection, path: str, busy_timeout: float) -> None:
    """WAL for concurrent readers and cheap commits; foreign keys on; wait for locks."""
    try:
        await conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000):d}")
        if path != ":memory:":
            async with conn.execute("PRAGMA journal_mode = WAL") as cursor:
                row = await cursor.fetchone()
            if row is None or str(row[0]).lower() != "wal":
                raise DatabaseError(f"{path}: cannot switch to WAL journal mode (got {row})")
        # NORMAL is durable across process crashes in WAL mode (only an OS crash or power
        # loss can lose the last commits), which is what the outbox needs.
        await conn.execute("PRAGMA synchronous = NORMAL")
        await conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.Error as exc:
        raise DatabaseError(f"cannot configure database {path}: {exc}") from exc


async def _rollback(conn: aiosqlite.Connection) -> None:
    """Roll back if a transaction is still open (a failed COMMIT may have ended it)."""
    if conn.in_transaction:
        await conn.rollback()


async def _recover(conn: aiosqlite.Connection) -> None:
    """End whatever transaction a failed or cancelled block left open.

    A task cancelled while awaiting ``BEGIN`` (a consumer torn down when the broker goes
    away) gets ``CancelledError`` at once, but aiosqlite still runs the statement on its
    thread afterwards; left alone, that open transaction makes every later ``BEGIN`` fail.
    A no-op statement waits for everything queued before it, then the rollback is sure.
    Shielded by the callers, so a second cancellation cannot interrupt it.
    """
    await conn.execute("SELECT 1")
    await _rollback(conn)


def _statements(script: str) -> list[str]:
    """Split a script into complete statements (executescript would commit on its own)."""
    statements: list[str] = []
    pending = ""
    for part in script.split(";"):
        pending += part + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \t\r\n;"):
                statements.append(pending.strip())
            pending = ""
    pending = pending.rstrip(";")
    if pending.strip():
        raise DatabaseError(f"incomplete SQL statement in migration: {pending.strip()[:80]!r}")
    return statements
