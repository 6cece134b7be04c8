"""What only a real RabbitMQ can show: broker restarts, killed consumer processes, foreign
clients, confirms that never come."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from events.bus import Bus, Subscription
from events.envelope import Event, decode_event
from events.errors import BusError, PublishTimeout
from events.names import EVENTS_EXCHANGE, binding
from events.payloads import TaskCancelled
from tests.contract.support import (
    RabbitTransport,
    Recorder,
    eventually,
    subject,
    task_cancelled,
    task_ready,
)
from tests.support.rabbitmq import RabbitNode

pytestmark = pytest.mark.rabbitmq

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def private(private_rabbit: RabbitNode) -> AsyncIterator[RabbitTransport]:
    """The transport on this session's private node, which the test may restart."""
    transport = RabbitTransport(private_rabbit.url())
    try:
        yield transport
    finally:
        await transport.aclose()


def _restart(node: RabbitNode) -> None:
    """Stop the broker (a clean shutdown of its VM) and start it again on the same port."""
    node.stop()
    node.start()


@pytest.mark.slow
async def test_broker_restart_loses_no_confirmed_event(private_rabbit: RabbitNode,
                                                       private: RabbitTransport) -> None:
    s = subject()
    work = Subscription(private.queue("restart"), (binding("task-ready", s),), prefetch=32)
    publisher = await private.open(publish_timeout=1.0)
    consumer = await private.open()
    received: set[str] = set()

    async def handle(event: Event[Any]) -> None:
        received.add(event.id)

    await consumer.subscribe(work, handle)

    confirmed: list[str] = []
    failed_publishes = 0
    restart: asyncio.Task[None] | None = None
    confirmed_after_restart = 0
    task_id = 0
    while restart is None or not restart.done() or confirmed_after_restart < 100:
        task_id += 1
        event = task_ready(s, task_id=task_id)
        while True:  # a publish that raised was not confirmed: the publisher tries again
            try:
                await publisher.publish(event)
                break
            except BusError:
                failed_publishes += 1
                await asyncio.sleep(0.1)
        confirmed.append(event.id)
        if restart is not None and restart.done():
            confirmed_after_restart += 1
        if restart is None and len(confirmed) == 200:
            restart = asyncio.create_task(asyncio.to_thread(_restart, private_rabbit))
        await asyncio.sleep(0.002)
    await restart

    async def missing() -> int:
        return len(set(confirmed) - received)

    assert await eventually(missing, 0, timeout=60) == 0, (
        f"{len(set(confirmed) - received)} of {len(confirmed)} confirmed events never arrived "
        f"({failed_publishes} publishes failed during the restart and were retried)"
    )
    # The consumer that lived through the restart is the one that got the later events.
    assert confirmed[-1] in received


async def test_consumer_process_killed_mid_handler_gives_its_message_back(
    rabbit: RabbitTransport, tmp_path: Path
) -> None:
    s = subject()
    work = Subscription(
        rabbit.queue("killed"), (binding("task-ready", s),), prefetch=1, work_queue=True
    )
    bus = await rabbit.open()
    await bus.declare(work)
    victim = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).with_name("consumer_process.py")),
        rabbit.url,
        work.queue,
        work.bindings[0],
        str(tmp_path),
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert victim.stdout is not None
        assert await asyncio.wait_for(victim.stdout.readline(), 60) == b"ready\n"
        event = task_ready(s)
        await bus.publish(event)

        async def in_handler() -> bool:
            return (tmp_path / event.id).exists()

        assert await eventually(in_handler, True) is True
        victim.send_signal(signal.SIGKILL)
        assert await victim.wait() == -signal.SIGKILL
    finally:
        if victim.returncode is None:
            victim.kill()
            await victim.wait()

    survivor = Recorder()
    await bus.subscribe(work, survivor)
    await survivor.wait_handled(1)
    assert survivor.ids == [event.id]
    assert await bus.dead_letters(work.queue) == []


async def test_foreign_non_json_message_is_dead_lettered_and_the_service_keeps_running(
    rabbit: RabbitTransport,
) -> None:
    if shutil.which("amqp-publish") is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("amqp-publish (Debian's amqp-tools) is required in CI")
        pytest.skip("amqp-publish is not installed (apt-get install amqp-tools)")
    s = subject()
    service = await rabbit.open()
    queue = rabbit.queue("foreign")
    handled = Recorder()
    await service.subscribe(Subscription(queue, (binding("task-cancelled", s),)), handled)
    routing_key = f"task-cancelled.{s}"

    foreign = await asyncio.create_subprocess_exec(
        "amqp-publish",
        f"--url={rabbit.url}",
        "-e",
        EVENTS_EXCHANGE,
        "-r",
        routing_key,
        "-b",
        "not json",
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await foreign.communicate()
    assert foreign.returncode == 0, stderr.decode()
    await rabbit.inject(b"\xff\xfe\x00 raw bytes from aio-pika", routing_key)

    async def dead_count() -> int:
        return len(await service.dead_letters(queue))

    assert await eventually(dead_count, 2) == 2
    dead = {d.body: d for d in await service.dead_letters(queue)}
    assert set(dead) == {b"not json", b"\xff\xfe\x00 raw bytes from aio-pika"}
    for letter in dead.values():
        assert letter.reason.startswith("invalid event: body is not valid JSON")
        assert letter.routing_key == routing_key
        assert letter.queue == queue

    # The service is still consuming: a valid event published afterwards is handled.
    after = task_cancelled(s, task_id=5)
    await service.publish(after)
    await handled.wait_handled(1)
    assert handled.ids == [after.id]
    assert isinstance(handled.events[0].data, TaskCancelled)
    assert handled.attempts == {after.id: 1}


class StallingProxy:
    """A TCP proxy in front of RabbitMQ that can hold back the broker's replies, so a
    publish waits for a confirm that does not come (without touching the shared broker)."""

    def __init__(self, host: str, port: int) -> None:
        self._upstream = (host, port)
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._connect, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    def stall(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    async def _connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        self._writers += [writer, up_writer]
        for task in (self._pump(reader, up_writer, None), self._pump(up_reader, writer, True)):
            self._tasks.add(asyncio.create_task(task))

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, held: bool | None
    ) -> None:
        while data := await reader.read(65536):
            if held:
                await self._flowing.wait()
            writer.write(data)
            await writer.drain()
        writer.close()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def test_publish_without_confirm_times_out_and_the_bus_recovers(
    rabbit: RabbitTransport,
) -> None:
    url = rabbit.url
    host_port = url.split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.rsplit(":", 1)
    proxy = StallingProxy(host, int(port))
    local_port = await proxy.start()
    try:
        rabbit.url = url.replace(host_port, f"127.0.0.1:{local_port}")
        bus = await rabbit.open(publish_timeout=0.5)
        rabbit.url = url
        s = subject()
        queue = rabbit.queue("timeout")
        await bus.declare(Subscription(queue, (binding("task-ready", s),)))

        proxy.stall()
        with pytest.raises(PublishTimeout, match=f"task-ready.{s}"):
            await bus.publish(task_ready(s, task_id=1))
        proxy.resume()

        await bus.publish(task_ready(s, task_id=2), timeout=10)
        # The first publish reached the broker; only its confirm was late.
        assert await eventually(lambda: bus.queue_depth(queue), 2) == 2
        await bus.close(timeout=1)
    finally:
        await proxy.close()


async def test_events_are_published_persistent_as_cloudevents_json(
    rabbit: RabbitTransport,
) -> None:
    s = subject()
    bus = await rabbit.open()
    queue = rabbit.queue("persistent")
    await bus.declare(Subscription(queue, (binding("task-ready", s),)))
    event = task_ready(s)
    await bus.publish(event)

    connection = await rabbit.raw()
    async with connection.channel() as channel:
        declared = await channel.get_queue(queue, ensure=True)
        message = await declared.get(no_ack=True, timeout=10)
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert message.content_type == "application/cloudevents+json"
    assert message.message_id == event.id and message.type == "task-ready"
    assert message.routing_key == f"task-ready.{s}"
    assert decode_event(message.body) == event


async def _check_result(bus: Bus) -> str:
    try:
        await bus.check()
    except BusError as exc:
        return str(exc)
    return "ok"


async def _until_check(bus: Bus, healthy: bool, within: float) -> str:
    """Poll ``check`` until it passes (or fails); what it said last."""
    deadline = time.monotonic() + within
    while True:
        said = await _check_result(bus)
        if (said == "ok") == healthy or time.monotonic() > deadline:
            return said
        await asyncio.sleep(0.05)


async def test_check_reports_a_lost_connection_at_once_and_its_return(
    private_rabbit: RabbitNode, private: RabbitTransport
) -> None:
    """The robust connection tells the bus when the socket goes and when every channel is
    back: ``check`` follows within a second or two, without publishing anything."""
    s = subject()
    bus = await private.open()
    work = Subscription(private.queue("check"), (binding("task-ready", s),))
    received = Recorder()
    await bus.subscribe(work, received)
    assert await _check_result(bus) == "ok"

    await asyncio.to_thread(private_rabbit.stop)
    said = await _until_check(bus, healthy=False, within=10)
    assert said.startswith(f"connection to RabbitMQ at amqp://127.0.0.1:{private_rabbit.port}/ "
                           "lost "), said
    assert said.endswith("; reconnecting"), said

    await asyncio.to_thread(private_rabbit.start)
    assert await _until_check(bus, healthy=True, within=60) == "ok"
    # Healthy means usable: the restored consumer gets what is published now.
    event = task_ready(s)
    await bus.publish(event)
    await received.wait_handled(1)
    assert received.ids == [event.id]
