"""What the contract tests need from a transport, independent of which one it is.

A :class:`Transport` opens connected buses (several per test: for the embedded broker they
share one :class:`MemoryBroker`, for RabbitMQ they are separate connections), injects raw
bodies the way a foreign client would, and hands out unique queue names so that tests never
see each other's messages. Everything it opened is closed and deleted after the test.
"""

from __future__ import annotations

import abc
import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika

from events.amqp import AmqpBus
from events.bus import Bus
from events.envelope import Event, new_event
from events.memory import MemoryBroker, MemoryBus
from events.names import (
    DEAD_LETTER_EXCHANGE,
    EVENTS_EXCHANGE,
    HEADER_QUEUE,
    HEADER_REASON,
    HEADER_ROUTING_KEY,
    dead_letter_queue,
)
from events.payloads import CommitSeen, PackagePublished, PublishedPackage, TaskCancelled, TaskReady

SOURCE = "urn:cairn:test:contract"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


class Transport(abc.ABC):
    """One transport under test, with the helpers a contract test needs."""

    name: str

    def __init__(self) -> None:
        self.buses: list[Bus] = []
        self.queues: list[str] = []

    @abc.abstractmethod
    def _new_bus(self, publish_timeout: float) -> Bus: ...

    async def open(self, *, publish_timeout: float = 10.0) -> Bus:
        """A connected bus, closed at the end of the test."""
        bus = self._new_bus(publish_timeout)
        await bus.connect()
        self.buses.append(bus)
        return bus

    def queue(self, label: str) -> str:
        """A queue name no other test uses."""
        name = f"test.{label}.{uuid.uuid4().hex[:10]}"
        self.queues.append(name)
        return name

    @abc.abstractmethod
    async def inject(self, body: bytes, routing_key: str) -> None:
        """Publish raw bytes to the events exchange, bypassing cairn's encoder."""

    @abc.abstractmethod
    async def inject_dead_letter(self, body: bytes, queue: str, routing_key: str) -> None:
        """Put raw bytes into ``queue``'s dead-letter queue as if a consumer had
        dead-lettered them from ``routing_key`` (any account may write to the dead-letter
        exchange, so a dead letter is untrusted too)."""

    async def aclose(self) -> None:
        for bus in self.buses:
            await bus.close(timeout=1.0)


def _dead_letter_headers(queue: str, routing_key: str) -> dict[str, Any]:
    return {HEADER_REASON: "injected by a test", HEADER_ROUTING_KEY: routing_key,
            HEADER_QUEUE: queue}


class MemoryTransport(Transport):
    name = "memory"

    def __init__(self) -> None:
        super().__init__()
        self.broker = MemoryBroker()

    def _new_bus(self, publish_timeout: float) -> Bus:
        return MemoryBus(self.broker)

    async def inject(self, body: bytes, routing_key: str) -> None:
        reached = self.broker.route(body, routing_key)
        assert reached > 0, f"nothing is bound to {routing_key}"

    async def inject_dead_letter(self, body: bytes, queue: str, routing_key: str) -> None:
        self.broker.send_to_queue(dead_letter_queue(queue), body, routing_key,
                                  _dead_letter_headers(queue, routing_key))


class RabbitTransport(Transport):
    name = "rabbitmq"

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self._raw: aio_pika.abc.AbstractConnection | None = None

    def _new_bus(self, publish_timeout: float) -> Bus:
        return AmqpBus(
            self.url, name=f"contract-{uuid.uuid4().hex[:6]}", publish_timeout=publish_timeout
        )

    async def raw(self) -> aio_pika.abc.AbstractConnection:
        if self._raw is None:
            self._raw = await aio_pika.connect(self.url)
        return self._raw

    async def inject(self, body: bytes, routing_key: str) -> None:
        connection = await self.raw()
        async with connection.channel(publisher_confirms=True, on_return_raises=True) as ch:
            exchange = await ch.get_exchange(EVENTS_EXCHANGE, ensure=True)
            await exchange.publish(
                aio_pika.Message(
                    body,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    message_id=uuid.uuid4().hex,
                ),
                routing_key,
                mandatory=True,
                timeout=10,
            )

    async def inject_dead_letter(self, body: bytes, queue: str, routing_key: str) -> None:
        connection = await self.raw()
        async with connection.channel(publisher_confirms=True, on_return_raises=True) as ch:
            exchange = await ch.get_exchange(DEAD_LETTER_EXCHANGE, ensure=True)
            await exchange.publish(
                aio_pika.Message(body, headers=_dead_letter_headers(queue, routing_key),
                                 delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                dead_letter_queue(queue),
                mandatory=True,
                timeout=10,
            )

    async def aclose(self) -> None:
        await super().aclose()
        connection = await self.raw()
        async with connection.channel() as channel:
            for name in self.queues:
                for queue in (name, dead_letter_queue(name)):
                    await channel.queue_delete(queue)
        await connection.close()


class Recorder:
    """A handler that records what it handled, and lets a test wait for a count."""

    def __init__(self, action: Callable[[Event[Any]], Awaitable[None]] | None = None) -> None:
        self.events: list[Event[Any]] = []
        self.attempts: dict[str, int] = {}
        self._action = action
        self._changed = asyncio.Condition()

    async def __call__(self, event: Event[Any]) -> None:
        async with self._changed:
            self.attempts[event.id] = self.attempts.get(event.id, 0) + 1
            self._changed.notify_all()
        if self._action is not None:
            await self._action(event)
        async with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    @property
    def ids(self) -> list[str]:
        return [e.id for e in self.events]

    async def wait_handled(self, count: int, timeout: float = 30.0) -> list[Event[Any]]:
        """Wait until ``count`` handlings completed; fail naming what was seen."""
        await self._wait(lambda: len(self.events) >= count, timeout, f"{count} handled events")
        return self.events

    async def wait_attempts(self, count: int, timeout: float = 30.0) -> None:
        await self._wait(
            lambda: sum(self.attempts.values()) >= count, timeout, f"{count} handler calls"
        )

    async def _wait(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        async def check() -> None:
            async with self._changed:
                await self._changed.wait_for(ready)

        try:
            await asyncio.wait_for(check(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"expected {what} within {timeout}s; handled "
                f"{len(self.events)}, attempts {self.attempts}"
            ) from None


async def hang(event: Event[Any]) -> None:
    """A handler that never returns: its consumer dies holding the message."""
    await asyncio.Event().wait()


async def eventually(
    probe: Callable[[], Awaitable[Any]], expected: Any, timeout: float = 30.0
) -> Any:
    """Poll ``probe`` until it returns ``expected`` (brokers settle asynchronously)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        got = await probe()
        if got == expected or loop.time() > deadline:
            return got
        await asyncio.sleep(0.05)


def subject() -> str:
    """A routing-key subject (a builder's name) no other test publishes to."""
    return f"t{uuid.uuid4().hex[:10]}"


def task_ready(builder: str, task_id: int = 1,
               causation: Event[Any] | None = None) -> Event[Any]:
    payload = TaskReady(
        task_id=task_id,
        attempt=1,
        builder=builder,
        source="nano",
        version="1.0",
        release=task_id,
        arch="x86_64",
        repository="recipes",
        repository_url="file:///r",
        commit=COMMIT,
        recipe_path="n/nano/stone.yaml",
    )
    return new_event(payload, source=SOURCE, causation=causation)


def task_cancelled(builder: str, task_id: int = 1) -> Event[Any]:
    return new_event(TaskCancelled(task_id=task_id, builder=builder, arch="x86_64"),
                     source=SOURCE)


def package_published(channel: str, task_id: int = 1) -> Event[Any]:
    """What only vessel may publish: a build's packages are in the repository."""
    package = PublishedPackage(name="nano", version="1.0", release=task_id, build_release=1,
                               sha256="a" * 64)
    return new_event(PackagePublished(task_id=task_id, source="nano", release=task_id,
                                      build_release=1, arch="x86_64", channel=channel,
                                      generation=1, packages=[package]), source=SOURCE)


def commit_seen(repository: str) -> Event[Any]:
    """What only summit may publish: a branch now points at a commit."""
    return new_event(CommitSeen(repository=repository, url="https://git.example/r",
                                branch="main", new_commit=COMMIT), source=SOURCE)
