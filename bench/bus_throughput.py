"""Bus throughput: raw aio-pika against the cairn bus, publishing and consuming N events.

Both runs do the same broker work, so the ratio is what cairn's own code costs:

* persistent messages, publisher confirms, ``mandatory``, manual acks;
* a durable topic exchange and a quorum queue with the same x-arguments (cairn's queues are
  quorum queues, so the raw run uses one too);
* the same body size (the raw body *is* an encoded cairn event), the same prefetch and the
  same number of publishes awaiting their confirm at once (``--outstanding``);
* one connection: a publishing channel and a consuming channel.

The cairn run adds what a service pays: ``new_event`` (envelope, validation), encoding,
``publish`` with its timeout and confirm, and on the consuming side decoding and validation,
``events.consume.process`` and the ack. msgs/s = N / time from the first publish until the
last message was consumed.

    .venv/bin/python bench/bus_throughput.py --broker amqp://guest:guest@127.0.0.1:5672/bench \\
        --messages 20000

Point it at a vhost of its own: the cairn run publishes ``task-ready.bench`` to
``cairn.events``, and any queue bound to ``task-ready.*`` in that vhost would get copies.
With ``--rounds`` each side is measured that many times (alternating) and the best is kept.

The last line of stdout is one JSON object with ``raw_per_s``, ``cairn_per_s`` and ``ratio``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import sys
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aio_pika

from events.amqp import AmqpBus, queue_arguments
from events.bus import Subscription
from events.envelope import Event, encode_event, new_event
from events.payloads import TaskReady

SOURCE = "urn:cairn:bench"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
ARCH = "bench"


def payload(task_id: int, size: int) -> TaskReady:
    """A task-ready payload whose encoded event is ``size`` bytes (or the natural size)."""
    base = TaskReady(
        task_id=task_id,
        attempt=1,
        builder=ARCH,
        source="nano",
        version="8.4",
        release=12,
        arch=ARCH,
        repository="recipes",
        repository_url="https://git.example/recipes.git",
        commit=COMMIT,
        recipe_path="n/nano/stone.yaml",
    )
    natural = len(encode_event(new_event(base, source=SOURCE)))
    if size <= natural:
        return base
    padding = size - natural + len(base.reason)
    if padding > 4096:
        raise SystemExit(f"--size {size}: at most {natural - len(base.reason) + 4096} bytes")
    return TaskReady(
        **{**{f: getattr(base, f) for f in base.__struct_fields__}, "reason": "x" * padding}
    )


async def pipelined(
    count: int, outstanding: int, publish_one: Callable[[int], Coroutine[Any, Any, None]]
) -> None:
    """Publish ``count`` messages with at most ``outstanding`` confirms awaited at once."""
    window = asyncio.Semaphore(outstanding)
    failures: list[BaseException] = []
    tasks: set[asyncio.Task[None]] = set()

    def done(task: asyncio.Task[None]) -> None:
        tasks.discard(task)
        window.release()
        if not task.cancelled() and task.exception() is not None:
            failures.append(task.exception())  # type: ignore[arg-type]

    for i in range(count):
        await window.acquire()
        if failures:
            raise failures[0]
        task = asyncio.create_task(publish_one(i))
        tasks.add(task)
        task.add_done_callback(done)
    while tasks:
        await asyncio.gather(*list(tasks), return_exceptions=True)
    if failures:
        raise failures[0]


@dataclass(frozen=True)
class Run:
    """One measured run: wall time until the last message was consumed, and the CPU time
    this process spent meanwhile (less sensitive to other load on the machine)."""

    seconds: float
    cpu_seconds: float


class Counter:
    """Counts consumed messages and wakes the runner at ``target``."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.seen = 0
        self.finished = asyncio.Event()

    def hit(self) -> None:
        self.seen += 1
        if self.seen >= self.target:
            self.finished.set()


async def run_raw(url: str, count: int, body: bytes, prefetch: int, outstanding: int) -> Run:
    connection = await aio_pika.connect_robust(url)
    name = f"bench.raw.{uuid.uuid4().hex[:8]}"
    subscription = Subscription(name, (f"task-ready.{ARCH}",), prefetch=prefetch)
    try:
        publishing = await connection.channel(publisher_confirms=True, on_return_raises=True)
        consuming = await connection.channel()
        await consuming.set_qos(prefetch_count=prefetch)
        exchange = await publishing.declare_exchange(
            f"{name}.x", aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await consuming.declare_queue(
            name, durable=True, arguments=queue_arguments(subscription)
        )
        await queue.bind(f"{name}.x", routing_key=f"task-ready.{ARCH}")
        counter = Counter(count)

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            await message.ack()
            counter.hit()

        tag = await queue.consume(on_message)

        async def publish_one(i: int) -> None:
            message = aio_pika.Message(
                body,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                content_type="application/cloudevents+json",
                message_id=str(uuid.uuid4()),
                type="task-ready",
            )
            await exchange.publish(message, f"task-ready.{ARCH}", mandatory=True, timeout=10)

        started, cpu = time.perf_counter(), time.process_time()
        await pipelined(count, outstanding, publish_one)
        await asyncio.wait_for(counter.finished.wait(), 600)
        elapsed = Run(time.perf_counter() - started, time.process_time() - cpu)
        await queue.cancel(tag)
        await queue.delete(if_unused=False, if_empty=False)
        await publishing.exchange_delete(f"{name}.x")
        return elapsed
    finally:
        await connection.close()


async def run_cairn(url: str, count: int, size: int, prefetch: int, outstanding: int) -> Run:
    name = f"bench.cairn.{uuid.uuid4().hex[:8]}"
    subscription = Subscription(name, (f"task-ready.{ARCH}",), prefetch=prefetch)
    bus = AmqpBus(url, name="bench")
    await bus.connect()
    try:
        counter = Counter(count)

        async def handle(event: Event[Any]) -> None:
            counter.hit()

        await bus.subscribe(subscription, handle)
        payloads = [payload(i + 1, size) for i in range(min(count, 64))]

        async def publish_one(i: int) -> None:
            await bus.publish(new_event(payloads[i % len(payloads)], source=SOURCE))

        started, cpu = time.perf_counter(), time.process_time()
        await pipelined(count, outstanding, publish_one)
        await asyncio.wait_for(counter.finished.wait(), 600)
        elapsed = Run(time.perf_counter() - started, time.process_time() - cpu)
    finally:
        await bus.close()
    connection = await aio_pika.connect(url)
    async with connection, connection.channel() as channel:
        await channel.queue_delete(name)
        await channel.queue_delete(subscription.dead_letter_queue)
    return elapsed


async def main(args: argparse.Namespace) -> dict[str, Any]:
    body = encode_event(new_event(payload(1, args.size), source=SOURCE))
    # Warm up both paths (connections, queue declaration, code paths) before measuring.
    await run_raw(args.broker, 500, body, args.prefetch, args.outstanding)
    await run_cairn(args.broker, 500, args.size, args.prefetch, args.outstanding)
    raws: list[Run] = []
    cairns: list[Run] = []
    profiler = cProfile.Profile() if args.profile else None
    n = args.messages
    for round_ in range(args.rounds):
        raws.append(await run_raw(args.broker, n, body, args.prefetch, args.outstanding))
        if profiler is not None:
            profiler.enable()
        cairns.append(await run_cairn(args.broker, n, args.size, args.prefetch, args.outstanding))
        if profiler is not None:
            profiler.disable()
        raw, cairn = raws[-1], cairns[-1]
        print(
            f"round {round_ + 1}: raw {n / raw.seconds:7.0f} msg/s "
            f"({raw.cpu_seconds / n * 1e6:5.0f} us CPU/msg)   "
            f"cairn {n / cairn.seconds:7.0f} msg/s ({cairn.cpu_seconds / n * 1e6:5.0f} us CPU/msg)"
        )
    if profiler is not None:
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(40)
    raw_per_s = n / min(r.seconds for r in raws)
    cairn_per_s = n / min(r.seconds for r in cairns)
    return {
        "messages": n,
        "body_bytes": len(body),
        "prefetch": args.prefetch,
        "outstanding": args.outstanding,
        "rounds": args.rounds,
        "raw_cpu_us_per_msg": round(min(r.cpu_seconds for r in raws) / n * 1e6, 1),
        "cairn_cpu_us_per_msg": round(min(r.cpu_seconds for r in cairns) / n * 1e6, 1),
        "raw_per_s": round(raw_per_s, 1),
        "cairn_per_s": round(cairn_per_s, 1),
        "ratio": round(cairn_per_s / raw_per_s, 3),
    }


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", required=True, help="amqp://user:pass@host:port/vhost")
    parser.add_argument("--messages", type=int, default=20000, help="events per run")
    parser.add_argument(
        "--size",
        type=int,
        default=0,
        help="body bytes (default: a task-ready event's natural size)",
    )
    parser.add_argument("--prefetch", type=int, default=64, help="consumer prefetch, both runs")
    parser.add_argument(
        "--outstanding",
        type=int,
        default=64,
        help="publishes awaiting their confirm at once, both runs",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="measure each side this many times; the best is reported",
    )
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the cairn runs (printed to stderr)"
    )
    return parser.parse_args()


if __name__ == "__main__":
    options = parse()
    result = asyncio.run(main(options))
    print(
        f"raw aio-pika: {result['raw_per_s']:.0f} msg/s; cairn bus: "
        f"{result['cairn_per_s']:.0f} msg/s; ratio {result['ratio']:.3f}"
    )
    print(json.dumps(result))
