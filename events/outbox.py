"""The transactional outbox: emit events in the same SQLite transaction as the state change.

A service never publishes directly after changing its state: the process could die between
the two, losing the event (state changed, nobody told) or, publishing first, announcing a
change that was then rolled back. Instead it calls :func:`add` inside its transaction, and
the :class:`OutboxRelay` publishes committed rows with publisher confirms and deletes them in
a following transaction.

Delivery guarantee: **at least once**. If the process dies after the broker confirmed a
publish and before the row was deleted, the relay publishes the same event (same id) again
when the service restarts. Consumers record handled ids in their inbox
(:mod:`events.inbox`) in the same transaction as the effect, so the duplicate is
acknowledged and ignored. An event is never lost: a committed row stays until a publish of
it was confirmed.

Order: a batch of rows is published in insertion order on the bus's one publishing channel,
without waiting for each confirm before sending the next (the confirms are awaited together:
one publish waited a broker round trip and, on a quorum queue, its disk write, so a relay
publishing one at a time was the longest wait between a commit and its consumers in a mass
rebuild). The broker enqueues a channel's messages in the order they were sent, so consumers
see a service's events in the order its transactions committed. A row whose publish fails is
retried with bounded back-off; the rows of its batch that were confirmed stay published, so
only when the broker refuses one message and accepts the next (a return or a nack, not a lost
connection: then everything after the lost message is lost too) can a retried row arrive
after rows behind it. That is safe because no consumer acts on arrival order: summit decides
by each task's state and attempt (a builder's claim of a cancelled or superseded attempt is
refused), and every consumer's inbox drops what it has already handled. A row that can never
be published (no queue bound for its routing key after many attempts, or a body that no
longer decodes) is *parked*: kept in the table with its error, logged, and skipped;
:func:`unpark` puts it back after the cause is fixed. Nothing is dropped silently.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import structlog

from events.bus import Bus
from events.envelope import Event, decode_event, encode_event
from events.errors import BusError, CairnError, EventValidationError, UnroutableEvent
from events.sqlite import Connection, Database

log = structlog.get_logger("cairn.outbox")

#: Append to a service's migration list (``Database.open(path, [..., OUTBOX_SCHEMA, ...])``).
OUTBOX_SCHEMA = """
CREATE TABLE cairn_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    routing_key TEXT NOT NULL,
    body BLOB NOT NULL,
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    parked INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE INDEX cairn_outbox_pending ON cairn_outbox (parked, seq);
"""


class OutboxError(CairnError):
    """The outbox relay was used wrongly (flushed while stopped, started twice)."""


async def add(conn: Connection, event: Event[Any]) -> None:
    """Queue ``event`` for publication inside the caller's open transaction.

    Call :meth:`OutboxRelay.notify` after the transaction committed so it goes out at once.
    """
    await conn.execute(
        "INSERT INTO cairn_outbox (event_id, event_type, routing_key, body, created_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (event.id, event.type, event.routing_key, encode_event(event), time.time()),
    )


@dataclass(frozen=True)
class OutboxRow:
    seq: int
    event_id: str
    routing_key: str
    body: bytes
    attempts: int


async def pending(db: Database, limit: int = 100) -> list[OutboxRow]:
    """The oldest rows not yet published (parked ones excluded), in insertion order."""
    rows = await db.fetchall(
        "SELECT seq, event_id, routing_key, body, attempts FROM cairn_outbox "
        "WHERE parked = 0 ORDER BY seq LIMIT ?",
        (limit,),
    )
    return [OutboxRow(r[0], r[1], r[2], bytes(r[3]), r[4]) for r in rows]


async def counts(db: Database) -> tuple[int, int]:
    """(pending, parked) row counts, for health checks and metrics."""
    row = await db.fetchone(
        "SELECT COALESCE(SUM(parked = 0), 0), COALESCE(SUM(parked = 1), 0) FROM cairn_outbox"
    )
    return (int(row[0]), int(row[1])) if row is not None else (0, 0)


async def unpark(db: Database) -> int:
    """Give every parked row another chance (after binding the missing queue, say)."""
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "UPDATE cairn_outbox SET parked = 0, attempts = 0 WHERE parked = 1"
        )
        return cursor.rowcount


@dataclass(frozen=True)
class RelayPolicy:
    """How the relay paces itself. The defaults suit a service; tests shorten them."""

    batch_size: int = 100
    #: Safety-net sweep when no notify() came (another process wrote rows, a lost wake-up).
    sweep_interval: float = 5.0
    backoff_base: float = 0.05
    backoff_max: float = 5.0
    #: Attempts of one row that routes nowhere before it is parked.
    park_after: int = 20
    #: Publish timeout passed to the bus (None: the bus's default).
    publish_timeout: float | None = None

    def backoff(self, failures: int) -> float:
        return float(min(self.backoff_max, self.backoff_base * 2 ** max(0, failures - 1)))


class OutboxRelay:
    """Publishes committed outbox rows, in order, with confirms, then deletes them.

    Use ``async with OutboxRelay(db, bus) as relay:`` (or :meth:`start` / :meth:`stop`).
    Call :meth:`notify` after every commit that added rows: the relay wakes at once, so an
    event leaves within a few milliseconds of its commit; a slow periodic sweep is only a
    safety net. On start it publishes whatever a previous run left behind.
    """

    def __init__(self, db: Database, bus: Bus, policy: RelayPolicy | None = None) -> None:
        self.db = db
        self.bus = bus
        self.policy = policy or RelayPolicy()
        self._wake = asyncio.Event()
        self._progress = asyncio.Condition()
        self._requested = 0  # incremented by notify()
        self._drained = 0  # the last notify() count known to be fully published
        self._task: asyncio.Task[None] | None = None
        self._failing_since: float | None = None
        self.last_error: str | None = None
        self.published = 0

    async def __aenter__(self) -> OutboxRelay:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self.running:
            raise OutboxError("the outbox relay is already running")
        self._task = asyncio.create_task(self._run(), name="cairn-outbox-relay")

    def notify(self) -> None:
        """Rows were committed: publish them now."""
        self._requested += 1
        self._wake.set()

    async def flush(self) -> None:
        """Wait until every row committed before this call is published (or parked).

        Waits as long as the bus keeps failing: bound it with ``asyncio.timeout``.
        """
        if not self.running:
            raise OutboxError("the outbox relay is not running: start it before flush()")
        self.notify()
        target = self._requested
        async with self._progress:
            while self._drained < target:
                if not self.running:
                    raise OutboxError("the outbox relay stopped before the outbox was flushed")
                await self._progress.wait()

    async def stop(self, drain_timeout: float = 5.0) -> None:
        """Publish what is pending for up to ``drain_timeout`` seconds, then stop.

        Rows still pending stay in the table and go out on the next start.
        """
        if self._task is None:
            return
        if self.running and drain_timeout > 0:
            with suppress(TimeoutError, OutboxError):
                async with asyncio.timeout(drain_timeout):
                    await self.flush()
        task, self._task = self._task, None
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task

    async def check(self, max_failing: float = 60.0) -> None:
        """Health check: raise when publishing has been failing for ``max_failing`` seconds."""
        if not self.running:
            raise OutboxError("the outbox relay is not running")
        since = self._failing_since
        if since is not None and time.monotonic() - since > max_failing:
            raise OutboxError(
                f"publishing has failed for {time.monotonic() - since:.0f}s: {self.last_error}"
            )

    async def _run(self) -> None:
        try:
            await self._loop()
        except Exception as exc:  # a database failure: make it visible, check() reports it
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("outbox.relay_crashed", error=self.last_error)
            raise
        finally:
            async with self._progress:
                self._progress.notify_all()

    async def _loop(self) -> None:
        failures = 0
        while True:
            seen = self._requested
            self._wake.clear()
            done = await self._publish_batch()
            if done is None:  # the bus failed: back off, keep the wake-up for afterwards
                failures += 1
                await asyncio.sleep(self.policy.backoff(failures))
                continue
            failures = 0
            if done:  # a full or partial batch went out: look again at once
                continue
            await self._mark_drained(seen)
            with suppress(TimeoutError):
                async with asyncio.timeout(self.policy.sweep_interval):
                    await self._wake.wait()

    async def _mark_drained(self, seen: int) -> None:
        async with self._progress:
            self._drained = max(self._drained, seen)
            self._progress.notify_all()

    async def _publish_batch(self) -> int | None:
        """Publish one batch, its confirms awaited together; the number handled, or None
        when the bus failed for a row (the others' outcomes are kept: confirmed rows are
        deleted, parked ones stay parked)."""
        rows = await pending(self.db, self.policy.batch_size)
        if not rows:
            return 0
        # Each publish is its own task so that all are sent before any confirm is awaited;
        # the tasks reach the channel's lock in this order, and it sends in that order.
        outcomes = await asyncio.gather(*(self._publish_one(row) for row in rows))
        sent = [row.seq for row, outcome in zip(rows, outcomes, strict=True) if outcome]
        if sent:
            await self._delete(sent)
        return None if any(outcome is None for outcome in outcomes) else len(rows)

    async def _publish_one(self, row: OutboxRow) -> bool | None:
        """True once confirmed; False when parked; None when the bus failed (retry later)."""
        try:
            event = decode_event(row.body)
        except EventValidationError as exc:
            await self._park(row, f"body no longer decodes: {exc}")
            return False
        try:
            await self.bus.publish(event, timeout=self.policy.publish_timeout)
        except UnroutableEvent as exc:
            if row.attempts + 1 >= self.policy.park_after:
                await self._park(row, str(exc))
                return False
            await self._record_failure(row, exc)
            return None
        except BusError as exc:
            await self._record_failure(row, exc)
            return None
        self._failing_since = None
        self.published += 1
        return True

    async def _record_failure(self, row: OutboxRow, exc: BusError) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"
        if self._failing_since is None:
            self._failing_since = time.monotonic()
        log.warning(
            "outbox.publish_failed",
            event_id=row.event_id,
            routing_key=row.routing_key,
            attempt=row.attempts + 1,
            error=self.last_error,
        )
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE cairn_outbox SET attempts = attempts + 1, last_error = ? WHERE seq = ?",
                (self.last_error, row.seq),
            )

    async def _park(self, row: OutboxRow, reason: str) -> None:
        log.error(
            "outbox.parked", event_id=row.event_id, routing_key=row.routing_key, reason=reason
        )
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE cairn_outbox SET parked = 1, attempts = attempts + 1, last_error = ? "
                "WHERE seq = ?",
                (reason, row.seq),
            )

    async def _delete(self, seqs: list[int]) -> None:
        async with self.db.transaction() as conn:
            await conn.executemany("DELETE FROM cairn_outbox WHERE seq = ?", [(s,) for s in seqs])
