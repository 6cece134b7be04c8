"""The journal's SQLite store: one row per event id, indexed for the questions operators ask
(by time, type, subject, correlation, task, source package).

Recording is idempotent by event id, so redeliveries and replays add nothing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from events.envelope import Event, decode_event, encode_event
from events.sqlite import Connection, Database

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE journal (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        type TEXT NOT NULL,
        subject TEXT NOT NULL,
        origin TEXT NOT NULL,
        time TEXT NOT NULL,
        correlation_id TEXT NOT NULL,
        causation_id TEXT,
        task_id INTEGER,
        package_source TEXT,
        recorded_at REAL NOT NULL,
        body BLOB NOT NULL
    );
    CREATE INDEX journal_time ON journal (time);
    CREATE INDEX journal_type ON journal (type, time);
    CREATE INDEX journal_subject ON journal (subject);
    CREATE INDEX journal_correlation ON journal (correlation_id);
    CREATE INDEX journal_task ON journal (task_id);
    CREATE INDEX journal_source ON journal (package_source);
    """,
)


@dataclass(frozen=True)
class Filters:
    """What ``cairn events ls`` and ``replay`` select; every field narrows the result."""

    types: Sequence[str] = ()
    since: str | None = None
    until: str | None = None
    task_id: int | None = None
    correlation_id: str | None = None
    source: str | None = None
    limit: int | None = None

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if self.types:
            clauses.append(f"type IN ({','.join('?' * len(self.types))})")
            params.extend(self.types)
        for column, op, value in (("time", ">=", self.since), ("time", "<", self.until),
                                  ("task_id", "=", self.task_id),
                                  ("correlation_id", "=", self.correlation_id),
                                  ("package_source", "=", self.source)):
            if value is not None:
                clauses.append(f"{column} {op} ?")
                params.append(value)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


async def record(conn: Connection, event: Event[Any]) -> bool:
    """Record one event in the caller's transaction; False if its id was already there."""
    data = event.data
    cursor = await conn.execute(
        "INSERT OR IGNORE INTO journal (id, type, subject, origin, time, correlation_id, "
        "causation_id, task_id, package_source, recorded_at, body) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (event.id, event.type, event.subject, event.source, _iso(event),
         event.correlationid, event.causationid, getattr(data, "task_id", None),
         getattr(data, "source", None), time.time(), encode_event(event)),
    )
    return cursor.rowcount == 1


def _iso(event: Event[Any]) -> str:
    return event.time.isoformat().replace("+00:00", "Z")


async def select(db: Database, filters: Filters) -> list[Event[Any]]:
    """Recorded events in the order they happened."""
    where, params = filters.where()
    sql = f"SELECT body FROM journal{where} ORDER BY time, seq"  # noqa: S608 - fixed columns
    if filters.limit:
        sql += f" LIMIT {int(filters.limit)}"
    rows = await db.fetchall(sql, params)
    return [decode_event(bytes(row["body"])) for row in rows]


async def get(db: Database, event_id: str) -> Event[Any] | None:
    row = await db.fetchone("SELECT body FROM journal WHERE id = ?", (event_id,))
    return decode_event(bytes(row["body"])) if row is not None else None


async def causation_chain(db: Database, event_id: str, limit: int = 100) -> list[Event[Any]]:
    """The event and what caused it, oldest first (commit → task → build → publication)."""
    chain: list[Event[Any]] = []
    current: str | None = event_id
    while current is not None and len(chain) < limit:
        event = await get(db, current)
        if event is None:
            break
        chain.append(event)
        current = event.causationid
    return list(reversed(chain))


async def consequences(db: Database, event_id: str) -> list[Event[Any]]:
    """Events directly caused by this one."""
    rows = await db.fetchall("SELECT body FROM journal WHERE causation_id = ? ORDER BY seq",
                             (event_id,))
    return [decode_event(bytes(row["body"])) for row in rows]
