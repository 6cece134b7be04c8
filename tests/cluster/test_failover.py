"""cairn's clients on a three-node RabbitMQ cluster: several addresses, failover when a node
dies (kill -9 of its Erlang VM), publisher confirms lost with the node published again and
the duplicate dropped by the consumer's inbox, and quorum queues replicated on every node."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from events import topology
from events.amqp import AmqpBus
from events.bus import Subscription
from events.connect import bus_from_url
from events.envelope import Event
from events.errors import BusError
from events.inbox import INBOX_SCHEMA, apply_once
from events.names import binding
from events.sqlite import Connection, Database
from tests.contract.support import Recorder, eventually, subject, task_ready
from tests.support.rabbitmq import RabbitCluster

pytestmark = [pytest.mark.rabbitmq, pytest.mark.cluster, pytest.mark.timeout(300)]

EFFECTS = "CREATE TABLE effects (event_id TEXT NOT NULL, n INTEGER NOT NULL);"


class Buses:
    """Buses opened by a test, closed after it."""

    def __init__(self) -> None:
        self.opened: list[AmqpBus] = []

    async def open(self, urls: list[str], publish_timeout: float = 10.0) -> AmqpBus:
        bus = AmqpBus(urls, name=f"cluster-{uuid.uuid4().hex[:6]}",
                      publish_timeout=publish_timeout)
        await bus.connect()
        self.opened.append(bus)
        return bus

    async def close(self) -> None:
        for bus in self.opened:
            await bus.close(timeout=1.0)


@pytest.fixture
async def buses() -> AsyncIterator[Buses]:
    opened = Buses()
    try:
        yield opened
    finally:
        await opened.close()


def _address(bus: AmqpBus) -> str:
    connection: Any = bus._connection
    return str(connection.address)


async def test_clients_given_three_addresses_the_first_dead_connect_and_work(
        private_rabbit_cluster: RabbitCluster, buses: Buses) -> None:
    cluster = private_rabbit_cluster
    first = cluster.nodes[0]
    await asyncio.to_thread(first.kill)
    try:
        urls = cluster.urls()
        # Also as one comma-separated string (CAIRN_BUS_URL, --broker).
        joined = bus_from_url(",".join(urls), name="joined")
        assert isinstance(joined, AmqpBus) and joined.urls == urls
        await joined.connect()
        buses.opened.append(joined)
        consumer = await buses.open(urls)
        s = subject()
        queue = f"test.first-dead.{uuid.uuid4().hex[:8]}"
        recorder = Recorder()
        await consumer.subscribe(Subscription(queue, (binding("task-ready", s),)), recorder)
        sent = [task_ready(s, task_id=n) for n in range(1, 21)]
        for event in sent:
            await joined.publish(event)
        await recorder.wait_handled(len(sent))
        assert sorted(recorder.ids) == sorted(e.id for e in sent)
        for bus in (joined, consumer):
            assert f":{first.port}/" not in _address(bus)
    finally:
        await asyncio.to_thread(first.start)


async def test_quorum_queues_the_code_declares_are_replicated_on_every_node(
        private_rabbit_cluster: RabbitCluster, buses: Buses) -> None:
    cluster = private_rabbit_cluster
    vhost = f"replicas-{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(cluster.add_vhost, vhost)
    bus = await buses.open(cluster.urls(vhost))
    subscriptions = [topology.SUMMIT, topology.VESSEL, topology.JOURNAL,
                     topology.builder("b1")]
    for declared in subscriptions:
        await bus.declare(declared)
    everyone = {node.nodename for node in cluster.nodes}
    for declared in subscriptions:
        for queue in (declared.queue, declared.dead_letter_queue):
            members = await asyncio.to_thread(cluster.queue_members, queue, vhost)
            assert members == everyone, f"{queue} has replicas on {sorted(members)} only"


async def test_publisher_and_consumer_survive_kill_9_of_their_node_and_the_queue_leader(
        private_rabbit_cluster: RabbitCluster, buses: Buses, tmp_path: Path) -> None:
    """Both clients start on the node that leads the queue; that node is killed mid-stream.
    Every confirmed event is applied exactly once: a publish whose confirm died with the node
    is published again, and the consumer's inbox drops what arrives twice."""
    cluster = private_rabbit_cluster
    s = subject()
    work = Subscription(f"test.failover.{uuid.uuid4().hex[:8]}", (binding("task-ready", s),),
                        prefetch=32)
    setup = await buses.open(cluster.urls())
    await setup.declare(work)
    victim = await asyncio.to_thread(cluster.queue_leader, work.queue)
    urls = [victim.url(), *(n.url() for n in cluster.nodes if n is not victim)]
    publisher = await buses.open(urls, publish_timeout=5.0)
    consumer = await buses.open(urls)
    assert f":{victim.port}/" in _address(publisher) and f":{victim.port}/" in _address(consumer)

    async with Database.open(tmp_path / "consumer.sqlite", [INBOX_SCHEMA, EFFECTS]) as db:
        deliveries: dict[str, int] = {}

        async def handle(event: Event[Any]) -> None:
            deliveries[event.id] = deliveries.get(event.id, 0) + 1

            async def effect(conn: Connection) -> None:
                await conn.execute("INSERT INTO effects (event_id, n) VALUES (?, 1)",
                                   (event.id,))

            await apply_once(db, "test-consumer", event, effect)

        await consumer.subscribe(work, handle)
        confirmed: list[str] = []
        republished = 0
        kill: asyncio.Task[None] | None = None
        after = 0
        task_id = 0
        while kill is None or not kill.done() or after < 100:
            task_id += 1
            event = task_ready(s, task_id=task_id)
            while True:  # not confirmed: publish the same event again
                try:
                    await publisher.publish(event)
                    break
                except BusError:
                    republished += 1
                    await asyncio.sleep(0.1)
            confirmed.append(event.id)
            if kill is not None and kill.done():
                after += 1
            if kill is None and len(confirmed) == 150:
                kill = asyncio.create_task(asyncio.to_thread(victim.kill))
            await asyncio.sleep(0.002)
        await kill

        async def missing() -> int:
            rows = await db.fetchall("SELECT DISTINCT event_id FROM effects")
            return len(set(confirmed) - {r["event_id"] for r in rows})

        assert await eventually(missing, 0, timeout=90) == 0, (
            f"{await missing()} of {len(confirmed)} confirmed events were never applied "
            f"({republished} publishes were retried)")
        rows = await db.fetchall("SELECT event_id, count(*) AS n FROM effects "
                                 "GROUP BY event_id HAVING n > 1")
        assert rows == [], "an event's effect was applied twice"
    for bus in (publisher, consumer):
        assert f":{victim.port}/" not in _address(bus), "the client did not move to a live node"
    assert not victim.running
