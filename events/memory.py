"""The embedded, in-process broker: the bus of ``cairn up`` on one machine.

It honours the same contract as RabbitMQ (see :mod:`events.bus`): topic routing, mandatory
publishes, durable-until-the-process-exits queues, competing consumers with prefetch,
redelivery of whatever a consumer did not acknowledge when it went away, a delivery limit,
and dead-letter queues with the reason in headers. Several :class:`MemoryBus` instances may
share one :class:`MemoryBroker`, as several connections share a RabbitMQ server.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import structlog

from events.bus import Bus, Consumer, DeadLetter, Handler, Subscription
from events.consume import Disposition, Verdict, process, tell
from events.envelope import Event, decode_event, encode_event
from events.errors import BusError, EventValidationError, UnroutableEvent
from events.names import (
    HEADER_ATTEMPTS,
    HEADER_QUEUE,
    HEADER_REASON,
    HEADER_ROUTING_KEY,
)
from events.topic import matches

log = structlog.get_logger("cairn.bus.memory")


@dataclass
class _Message:
    body: bytes
    routing_key: str
    headers: dict[str, Any] = field(default_factory=dict)
    returns: int = 0
    #: The event ``body`` decodes to, decoded once when it was published (it never left
    #: this process); ``None``: every consumer decodes and checks the body itself.
    decoded: Event[Any] | None = None


@dataclass
class _Queue:
    name: str
    bindings: set[str]
    delivery_limit: int | None
    dead_letter_queue: str | None
    ready: deque[_Message] = field(default_factory=deque)
    consumers: list[_MemoryConsumer] = field(default_factory=list)
    turn: itertools.count[int] = field(default_factory=itertools.count)


class MemoryBroker:
    """Queues and routing, shared by every :class:`MemoryBus` connected to it."""

    def __init__(self) -> None:
        self._queues: dict[str, _Queue] = {}

    def declare(self, subscription: Subscription) -> None:
        if subscription.terminal:
            temporary = self._queues.setdefault(
                subscription.queue, _Queue(subscription.queue, set(), None, None))
            temporary.bindings.update(subscription.bindings)
            return
        dlq = subscription.dead_letter_queue
        if dlq not in self._queues:
            self._queues[dlq] = _Queue(dlq, set(), None, None)
        queue = self._queues.get(subscription.queue)
        if queue is None:
            queue = self._queues[subscription.queue] = _Queue(
                subscription.queue, set(), subscription.delivery_limit, dlq
            )
        queue.bindings.update(subscription.bindings)

    def route(self, body: bytes, routing_key: str, headers: dict[str, Any] | None = None,
              decoded: Event[Any] | None = None) -> int:
        """Enqueue on every queue bound to the key; the number of queues it reached."""
        targets = [q for q in self._queues.values() if any(matches(b, routing_key)
                                                             for b in q.bindings)]
        for queue in targets:
            self._enqueue(queue, _Message(body, routing_key, dict(headers or {}),
                                          decoded=decoded))
        return len(targets)

    def send_to_queue(self, queue_name: str, body: bytes, routing_key: str,
                      headers: dict[str, Any]) -> None:
        """Put a message straight on a named queue (the dead-letter exchange's job)."""
        self._enqueue(self.queue(queue_name), _Message(body, routing_key, headers))

    def delete(self, name: str) -> None:
        """Remove a queue and whatever is in it (transient queues, when their consumer goes)."""
        self._queues.pop(name, None)

    def queue(self, name: str) -> _Queue:
        try:
            return self._queues[name]
        except KeyError:
            raise BusError(f"no queue named {name!r} has been declared") from None

    def _enqueue(self, queue: _Queue, message: _Message, front: bool = False) -> None:
        if front:
            queue.ready.appendleft(message)
        else:
            queue.ready.append(message)
        self._pump(queue)

    def give_back(self, queue: _Queue, message: _Message) -> None:
        """A delivery that was never settled returns to the queue, or dead-letters at the
        delivery limit, as a RabbitMQ quorum queue does."""
        message.returns += 1
        if queue.delivery_limit is not None and message.returns >= queue.delivery_limit:
            self.dead_letter(queue, message, f"delivery limit of {queue.delivery_limit} "
                                             "reached (its consumers kept dying)", message.returns)
            return
        message.headers["x-delivery-count"] = message.returns
        self._enqueue(queue, message, front=True)

    def dead_letter(self, queue: _Queue, message: _Message, reason: str, attempts: int) -> None:
        if queue.dead_letter_queue is None:
            log.error("bus.dropped_dead_letter", queue=queue.name, reason=reason)
            return
        headers = {
            **message.headers,
            HEADER_REASON: reason,
            HEADER_ROUTING_KEY: message.routing_key,
            HEADER_QUEUE: queue.name,
            HEADER_ATTEMPTS: attempts,
        }
        self.send_to_queue(queue.dead_letter_queue, message.body, message.routing_key, headers)

    def _pump(self, queue: _Queue) -> None:
        """Hand ready messages to consumers with free prefetch, round robin."""
        while queue.ready:
            free = [c for c in queue.consumers if c.has_capacity()]
            if not free:
                return
            consumer = free[next(queue.turn) % len(free)]
            consumer.deliver(queue.ready.popleft())

    def pump(self, queue: _Queue) -> None:
        self._pump(queue)


class _MemoryConsumer(Consumer):
    def __init__(self, broker: MemoryBroker, queue: _Queue, subscription: Subscription,
                 handler: Handler, bus: MemoryBus) -> None:
        self._broker = broker
        self._bus = bus
        self._queue = queue
        self._subscription = subscription
        self._handler = handler
        self._inflight: dict[asyncio.Task[Verdict], _Message] = {}
        self._active = True

    def has_capacity(self) -> bool:
        return self._active and len(self._inflight) < self._subscription.prefetch

    def deliver(self, message: _Message) -> None:
        task = asyncio.get_running_loop().create_task(
            process(message.body, message.routing_key, self._subscription, self._handler,
                    self._bus.observer, decoded=message.decoded)
        )
        self._inflight[task] = message
        task.add_done_callback(self._settle)

    def _settle(self, task: asyncio.Task[Verdict]) -> None:
        message = self._inflight.pop(task)
        if task.cancelled() or task.exception() is not None:
            # The handler died without a verdict: like a dropped connection, give it back.
            self._broker.give_back(self._queue, message)
        else:
            verdict = task.result()
            if verdict.disposition is Disposition.DEAD_LETTER:
                self._broker.dead_letter(self._queue, message, verdict.reason, verdict.attempts)
        self._broker.pump(self._queue)

    async def cancel(self, timeout: float = 10.0) -> None:
        """Stop taking messages; wait for in-flight ones, then abandon the rest (they return)."""
        self._active = False
        if self in self._queue.consumers:
            self._queue.consumers.remove(self)
        if self._subscription.transient:
            self._broker.delete(self._queue.name)
        pending = list(self._inflight)
        if pending:
            _, still = await asyncio.wait(pending, timeout=timeout)
            for task in still:
                task.cancel()
            if still:
                await asyncio.wait(still)
        self._broker.pump(self._queue)


class MemoryBus(Bus):
    """A connection to a :class:`MemoryBroker` (a private one unless given)."""

    def __init__(self, broker: MemoryBroker | None = None) -> None:
        self.broker = broker if broker is not None else MemoryBroker()
        self._consumers: list[_MemoryConsumer] = []
        self._open = False

    async def connect(self) -> None:
        self._open = True

    async def check(self) -> None:
        """The embedded broker lives in this process: the bus works while it is open."""
        self._check_open()

    def _check_open(self) -> None:
        if not self._open:
            raise BusError("the bus is not connected (call connect() or use 'async with')")

    async def declare(self, subscription: Subscription) -> None:
        self._check_open()
        self.broker.declare(subscription)

    async def publish(self, event: Event[Any], *, timeout: float | None = None) -> None:
        self._check_open()
        started = time.perf_counter()
        body = encode_event(event)
        # Decoded (checked) once here for every queue it reaches, as each consumer would
        # decode it: the summit, the journal and every builder take a publication. A body
        # that does not decode goes out as it is, and each consumer dead-letters it.
        try:
            decoded: Event[Any] | None = decode_event(body)
        except EventValidationError:
            decoded = None
        if not self.broker.route(body, event.routing_key, decoded=decoded):
            tell(self.observer.publish_failed, event.type)
            raise UnroutableEvent(
                f"event {event.type} ({event.routing_key}) is bound to no queue: it would be lost"
            )
        await asyncio.sleep(0)
        tell(self.observer.published, event.type, time.perf_counter() - started)

    async def subscribe(self, subscription: Subscription, handler: Handler) -> Consumer:
        self._check_open()
        self.broker.declare(subscription)
        queue = self.broker.queue(subscription.queue)
        consumer = _MemoryConsumer(self.broker, queue, subscription, handler, self)
        queue.consumers.append(consumer)
        self._consumers.append(consumer)
        self.broker.pump(queue)
        return consumer

    async def dead_letters(self, queue: str, *, remove: bool = False) -> list[DeadLetter]:
        self._check_open()
        dlq = self.broker.queue(Subscription(queue, ()).dead_letter_queue)
        found = [
            DeadLetter(
                body=m.body,
                reason=str(m.headers.get(HEADER_REASON, "")),
                routing_key=str(m.headers.get(HEADER_ROUTING_KEY, m.routing_key)),
                queue=str(m.headers.get(HEADER_QUEUE, queue)),
                headers=dict(m.headers),
            )
            for m in dlq.ready
        ]
        if remove:
            dlq.ready.clear()
        return found

    async def queue_depth(self, queue: str) -> int:
        self._check_open()
        return len(self.broker.queue(queue).ready)

    async def close(self, timeout: float = 10.0) -> None:
        if not self._open:
            return
        consumers, self._consumers = self._consumers, []
        await asyncio.gather(*(c.cancel(timeout) for c in consumers))
        self._open = False
