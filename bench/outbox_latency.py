"""Outbox dispatch latency: from a transaction's commit to the consumer's handler.

Each event is "state change + outbox add" in one SQLite transaction, then ``notify()``; the
relay publishes it (with confirms) and a subscriber on the same bus records when it arrives.
Events are sent one at a time (the next after the previous arrived), so the figure is the
latency of one dispatch, not of a queue backlog. Then a burst measures throughput.

    .venv/bin/python bench/outbox_latency.py --broker memory:// --events 500
    .venv/bin/python bench/outbox_latency.py --broker amqp://guest:guest@127.0.0.1/ --events 500

The last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from events import outbox
from events.bus import Subscription
from events.connect import bus_from_url
from events.envelope import Event, new_event
from events.outbox import OUTBOX_SCHEMA, OutboxRelay
from events.payloads import BuildStarted
from events.sqlite import Database

STATE = "CREATE TABLE builds (task_id INTEGER PRIMARY KEY, builder TEXT NOT NULL);"


async def emit(db: Database, relay: OutboxRelay, task_id: int) -> float:
    event = new_event(BuildStarted(task_id=task_id, builder="bench", arch="x86_64"), source="b")
    async with db.transaction() as conn:
        await conn.execute("INSERT INTO builds VALUES (?, ?)", (task_id, "bench"))
        await outbox.add(conn, event)
    committed = time.perf_counter()
    relay.notify()
    return committed


async def run(broker: str, count: int, burst: int) -> dict[str, Any]:
    arrivals: asyncio.Queue[float] = asyncio.Queue()
    queue = "bench.outbox"  # one durable queue reused by every run, drained at the end
    sub = Subscription(queue, ("build-started.*",), prefetch=256)

    async def handler(event: Event[Any]) -> None:
        arrivals.put_nowait(time.perf_counter())

    with tempfile.TemporaryDirectory() as tmp:
        bus = bus_from_url(broker)
        async with (
            bus,
            Database.open(Path(tmp) / "bench.db", [OUTBOX_SCHEMA, STATE]) as db,
            OutboxRelay(db, bus) as relay,
        ):
            consumer = await bus.subscribe(sub, handler)
            latencies = []
            for task_id in range(1, count + 1):
                committed = await emit(db, relay, task_id)
                latencies.append((await arrivals.get()) - committed)
            started = time.perf_counter()
            for task_id in range(count + 1, count + burst + 1):
                await emit(db, relay, task_id)
            for _ in range(burst):
                last = await arrivals.get()
            elapsed = last - started
            await consumer.cancel()
    ms = sorted(x * 1000 for x in latencies)
    return {
        "broker": broker.split("@")[-1],
        "events": count,
        "p50_ms": round(statistics.median(ms), 3),
        "p95_ms": round(ms[int(len(ms) * 0.95) - 1], 3),
        "max_ms": round(ms[-1], 3),
        "burst": burst,
        "burst_per_s": round(burst / elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", default="memory://")
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--burst", type=int, default=2000)
    args = parser.parse_args()
    result = asyncio.run(run(args.broker, args.events, args.burst))
    print(
        f"commit -> handler latency over {result['events']} events on {result['broker']}: "
        f"p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms, max {result['max_ms']} ms"
    )
    print(f"burst of {result['burst']}: {result['burst_per_s']} events/s")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
