"""The inbox: apply each event's effect exactly once on an at-least-once bus.

The bus may deliver an event more than once (a redelivery after a consumer crash, the
outbox republishing after a producer crash, a replay). A consumer therefore records the ids
of the events it has handled in the *same* SQLite transaction as their effect: either both
are committed or neither is. A second delivery finds the id, does nothing, and returns
normally so the bus acknowledges it.

Ids are recorded per consumer name, so two consumers sharing one database (the embedded
``cairn up``) each handle every event once.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from events.envelope import Event
from events.sqlite import Connection, Database

#: Append to a service's migration list (``Database.open(path, [..., INBOX_SCHEMA, ...])``).
INBOX_SCHEMA = """
CREATE TABLE cairn_inbox (
    consumer TEXT NOT NULL,
    event_id TEXT NOT NULL,
    handled_at REAL NOT NULL,
    PRIMARY KEY (consumer, event_id)
) WITHOUT ROWID;
CREATE INDEX cairn_inbox_handled_at ON cairn_inbox (handled_at);
"""

#: An effect: database writes made with the given connection, inside the inbox transaction.
Effect = Callable[[Connection], Awaitable[None]]


async def claim(conn: Connection, consumer: str, event_id: str) -> bool:
    """Record ``event_id`` as handled by ``consumer`` inside the caller's transaction.

    True: first time, apply the effect in this same transaction. False: a duplicate, do
    nothing (the bus acknowledges it when the handler returns).
    """
    cursor = await conn.execute(
        "INSERT OR IGNORE INTO cairn_inbox (consumer, event_id, handled_at) VALUES (?, ?, ?)",
        (consumer, event_id, time.time()),
    )
    return cursor.rowcount == 1


async def apply_once(db: Database, consumer: str, event: Event[Any], effect: Effect) -> bool:
    """Claim ``event`` and run ``effect`` in one transaction; False if it was a duplicate.

    If ``effect`` raises, the claim is rolled back with it, so a retry runs it again.
    """
    async with db.transaction() as conn:
        if not await claim(conn, consumer, event.id):
            return False
        await effect(conn)
    return True


async def seen(db: Database, consumer: str, event_id: str) -> bool:
    """Whether ``consumer`` has handled ``event_id`` (for tests and tools)."""
    row = await db.fetchone(
        "SELECT 1 FROM cairn_inbox WHERE consumer = ? AND event_id = ?", (consumer, event_id)
    )
    return row is not None


async def prune(db: Database, older_than: float) -> int:
    """Forget ids handled more than ``older_than`` seconds ago; return how many.

    Only safe for ids that can no longer be redelivered: keep them longer than the broker
    can hold a message and longer than any replay window you intend to deduplicate.
    """
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "DELETE FROM cairn_inbox WHERE handled_at < ?", (time.time() - older_than,)
        )
        return cursor.rowcount
