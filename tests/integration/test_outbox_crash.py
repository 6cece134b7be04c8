"""Kill a real process (SIGKILL) between every step of outbox and inbox, then recover.

The producer child performs three operations, each "record a build + emit its event" in one
transaction, relayed to a file-backed bus; it kills itself at a chosen step of the second
operation. A fresh process then recovers (runs the relay). The consumer child reads the
published messages in order and applies each with the inbox, killing itself at a chosen
step; a fresh process then handles whatever was not acknowledged.

What must hold: a state change and its event are both there or both absent; every committed
event is published (twice only when the producer died between publish and delete); every
event's effect is applied exactly once.

This file is also the child program: ``python test_outbox_crash.py MODE DIR``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from events import outbox
from events.bus import PublishOnlyBus
from events.envelope import Event, decode_event, encode_event, new_event
from events.inbox import INBOX_SCHEMA, claim
from events.outbox import OUTBOX_SCHEMA, OutboxRelay, RelayPolicy
from events.payloads import BuildStarted
from events.sqlite import Database

REPO = Path(__file__).resolve().parents[2]
CRASH_ENV = "CAIRN_TEST_CRASH_AT"
#: The operation (producer) or message index (consumer) at which the child kills itself.
CRASH_OP = 2
PRODUCER_MIGRATIONS = [OUTBOX_SCHEMA, "CREATE TABLE builds (task_id INTEGER PRIMARY KEY);"]
CONSUMER_MIGRATIONS = [
    INBOX_SCHEMA,
    "CREATE TABLE counter (task_id INTEGER PRIMARY KEY, n INTEGER NOT NULL);",
]
CONSUMER = "crash-test"


# --- the child program ----------------------------------------------------------------


def crash_point(name: str, op: int) -> None:
    """Die here, without any cleanup, if this is the step the test asked for."""
    if os.environ.get(CRASH_ENV) == name and op == CRASH_OP:
        os.kill(os.getpid(), signal.SIGKILL)


class FileBusDouble(PublishOnlyBus):
    """A bus whose broker is an append-only file: one line per confirmed publish.

    The write reaches the kernel before ``publish`` returns, so it survives SIGKILL exactly
    like a broker's confirm survives the publisher's death.
    """

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    async def publish(self, event: Event[Any], *, timeout: float | None = None) -> None:
        os.write(self.fd, encode_event(event) + b"\n")
        crash_point("after-publish", event.data.task_id)

    async def close(self, timeout: float = 10.0) -> None:
        os.close(self.fd)


async def produce(work: Path) -> None:
    bus = FileBusDouble(work / "published.jsonl")
    policy = RelayPolicy(sweep_interval=3600.0)  # only notify() wakes it: steps stay exact
    async with (
        Database.open(work / "producer.db", PRODUCER_MIGRATIONS) as db,
        OutboxRelay(db, bus, policy) as relay,
    ):
        for op in (1, 2, 3):
            event = new_event(BuildStarted(task_id=op, builder="b", arch="x86_64"), source="t")
            async with db.transaction() as conn:
                await conn.execute("INSERT INTO builds VALUES (?)", (op,))
                crash_point("after-state", op)
                await outbox.add(conn, event)
                crash_point("before-commit", op)
            crash_point("after-commit", op)
            relay.notify()
            await relay.flush()
            crash_point("after-sent", op)
    await bus.close()


async def recover_producer(work: Path) -> None:
    bus = FileBusDouble(work / "published.jsonl")
    async with (
        Database.open(work / "producer.db", PRODUCER_MIGRATIONS) as db,
        OutboxRelay(db, bus, RelayPolicy(sweep_interval=3600.0)) as relay,
    ):
        await relay.flush()
    await bus.close()


async def consume(work: Path) -> None:
    """Handle every message not yet acknowledged, in order, acknowledging each after commit."""
    acked_path = work / "acked.txt"
    acked = set(acked_path.read_text().split()) if acked_path.exists() else set()
    messages = (work / "published.jsonl").read_bytes().splitlines()
    ack_fd = os.open(acked_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    async with Database.open(work / "consumer.db", CONSUMER_MIGRATIONS) as db:
        for index, body in enumerate(messages, start=1):
            if str(index) in acked:
                continue
            event = decode_event(body)
            async with db.transaction() as conn:
                if await claim(conn, CONSUMER, event.id):
                    crash_point("after-claim", index)
                    await conn.execute(
                        "INSERT INTO counter VALUES (?, 1) "
                        "ON CONFLICT (task_id) DO UPDATE SET n = n + 1",
                        (event.data.task_id,),
                    )
                    crash_point("after-effect", index)
            crash_point("after-commit", index)
            os.write(ack_fd, f"{index}\n".encode())
    os.close(ack_fd)


def child_main(mode: str, work: Path) -> None:
    programs = {"produce": produce, "recover": recover_producer, "consume": consume}
    asyncio.run(programs[mode](work))


# --- the tests ------------------------------------------------------------------------


def run_child(mode: str, work: Path, crash_at: str | None = None) -> int:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop(CRASH_ENV, None)
    if crash_at is not None:
        env[CRASH_ENV] = crash_at
    proc = subprocess.run(
        [sys.executable, __file__, mode, str(work)],
        cwd=REPO,
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode in (0, -signal.SIGKILL), proc.stderr.decode()
    return proc.returncode


def rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(db)) as conn:
        return [tuple(r) for r in conn.execute(sql)]


def published_task_ids(work: Path) -> list[int]:
    path = work / "published.jsonl"
    if not path.exists():
        return []
    return [decode_event(line).data.task_id for line in path.read_bytes().splitlines()]


PRODUCER_STEPS = {
    # crash step: (op 2's state and event committed?, times op 2's event is published)
    "after-state": (False, 0),
    "before-commit": (False, 0),
    "after-commit": (True, 1),
    "after-publish": (True, 2),
    "after-sent": (True, 1),
    None: (True, 1),
}


@pytest.mark.parametrize("step", list(PRODUCER_STEPS), ids=str)
def test_producer_crash_loses_nothing(tmp_path: Path, step: str | None) -> None:
    committed, publications = PRODUCER_STEPS[step]
    code = run_child("produce", tmp_path, step)
    assert code == (0 if step is None else -signal.SIGKILL)
    run_child("recover", tmp_path)

    expected = [1] + ([2] if committed else []) + ([3] if step is None else [])
    state = [r[0] for r in rows(tmp_path / "producer.db", "SELECT task_id FROM builds")]
    assert sorted(state) == expected
    published = published_task_ids(tmp_path)
    assert sorted(set(published)) == expected, "state change and event disagree"
    assert published.count(2) == publications
    assert all(published.count(op) == 1 for op in expected if op != 2)
    assert rows(tmp_path / "producer.db", "SELECT * FROM cairn_outbox") == []

    # The consuming side applies each committed event once, duplicates included.
    assert run_child("consume", tmp_path) == 0
    counts = dict(rows(tmp_path / "consumer.db", "SELECT task_id, n FROM counter"))
    assert counts == {op: 1 for op in expected}


CONSUMER_STEPS = ["after-claim", "after-effect", "after-commit", None]


@pytest.mark.parametrize("step", CONSUMER_STEPS, ids=str)
def test_consumer_crash_applies_once(tmp_path: Path, step: str | None) -> None:
    events = [
        new_event(BuildStarted(task_id=i, builder="b", arch="x86_64"), source="t")
        for i in (1, 2, 3)
    ]
    # Message 2 is crashed on; message 4 repeats it (a producer's republish after a crash).
    messages = [events[0], events[1], events[2], events[1]]
    (tmp_path / "published.jsonl").write_bytes(b"".join(encode_event(e) + b"\n" for e in messages))

    code = run_child("consume", tmp_path, step)
    assert code == (0 if step is None else -signal.SIGKILL)
    acked_before = (tmp_path / "acked.txt").read_text().split()
    assert acked_before == (["1", "2", "3", "4"] if step is None else ["1"])
    assert run_child("consume", tmp_path) == 0

    assert sorted((tmp_path / "acked.txt").read_text().split()) == ["1", "2", "3", "4"]
    counts = dict(rows(tmp_path / "consumer.db", "SELECT task_id, n FROM counter"))
    assert counts == {1: 1, 2: 1, 3: 1}
    handled = rows(tmp_path / "consumer.db", "SELECT event_id FROM cairn_inbox")
    assert sorted(r[0] for r in handled) == sorted(e.id for e in events)


if __name__ == "__main__":
    child_main(sys.argv[1], Path(sys.argv[2]))
