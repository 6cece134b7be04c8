"""The RabbitMQ transport (AMQP 0-9-1 with aio-pika's robust connection).

Topology, declared here at start-up and shipped identically in
``deploy/rabbitmq/definitions.json``: one durable topic exchange for events, one direct
exchange for dead letters, and for every consuming role a durable quorum queue (delivery
limit, dead-lettering to ``<queue>.dead``). Publishes are persistent, mandatory and wait for
the publisher confirm. The robust connection re-opens channels and re-registers consumers
after a broker restart, on the next node of a cluster when its node died
(:mod:`events.failover`); the objects it restores are kept referenced here for that reason.
A publish whose confirm was lost with its node is published again on the new connection:
consumers' inboxes drop the duplicate.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import aio_pika
import aiormq
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from pamqp.commands import Basic
from yarl import URL

from events.bus import DEFAULT_PUBLISH_TIMEOUT, Bus, Consumer, DeadLetter, Handler, Subscription
from events.consume import Disposition, Verdict, process, tell
from events.envelope import Event, encode_event
from events.errors import BusError, PublishTimeout, UnroutableEvent
from events.failover import connect_failover
from events.names import (
    DEAD_LETTER_EXCHANGE,
    EVENTS_EXCHANGE,
    HEADER_ATTEMPTS,
    HEADER_QUEUE,
    HEADER_REASON,
    HEADER_ROUTING_KEY,
)

log = structlog.get_logger("cairn.bus.amqp")

CONTENT_TYPE = "application/cloudevents+json"
#: Errors that mean "the connection is gone for now": wait for the robust reconnect.
_RECONNECTABLE = (
    aio_pika.exceptions.AMQPConnectionError,
    aio_pika.exceptions.ChannelInvalidStateError,
    aiormq.exceptions.ChannelClosed,
    ConnectionError,
    RuntimeError,
)


def queue_arguments(subscription: Subscription) -> dict[str, Any]:
    """The x-arguments of a consuming queue (also written into definitions.json).

    RabbitMQ's ``x-delivery-limit`` counts the deliveries given back *before* the one that
    dead-letters, so a limit of N allows N + 1 deliveries; the port promises
    ``delivery_limit`` deliveries at most, hence the ``- 1``."""
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": max(subscription.delivery_limit - 1, 0),
        "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
        "x-dead-letter-routing-key": subscription.dead_letter_queue,
    }


DEAD_LETTER_QUEUE_ARGUMENTS: dict[str, Any] = {"x-queue-type": "quorum"}


def _with_defaults(url: str) -> str:
    parsed = URL(url)
    query = dict(parsed.query)
    query.setdefault("reconnect_interval", "1")
    query.setdefault("heartbeat", "30")
    return str(parsed.with_query(query))


class _AmqpConsumer(Consumer):
    def __init__(self, bus: AmqpBus, subscription: Subscription, handler: Handler) -> None:
        self._bus = bus
        self._subscription = subscription
        self._handler = handler
        self._inflight: set[asyncio.Task[None]] = set()
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._tag: str | None = None

    async def start(self, connection: AbstractRobustConnection) -> None:
        self._channel = await connection.channel()
        await self._channel.set_qos(prefetch_count=self._subscription.prefetch)
        self._queue = await _declare(self._channel, self._subscription)
        self._tag = await self._queue.consume(self._on_message, no_ack=False)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._inflight.add(task)
        try:
            verdict = await process(message.body, self._arrived_on(message),
                                    self._subscription, self._handler, self._bus.observer)
            await self._settle(message, verdict)
        finally:
            self._inflight.discard(task)

    def _arrived_on(self, message: AbstractIncomingMessage) -> str:
        """The routing key the message was published with. A dead-letter queue receives
        every message under its own name: the original key is in the dead letter's headers
        (ours, or the broker's ``x-death``), as the embedded broker keeps it."""
        if self._subscription.dead_letter_reader:
            return _dead_letter_of(message, self._subscription.queue).routing_key
        return message.routing_key or ""

    async def _settle(self, message: AbstractIncomingMessage, verdict: Verdict) -> None:
        try:
            if verdict.disposition is Disposition.DEAD_LETTER and not self._subscription.terminal:
                await self._bus.send_dead_letter(message, self._subscription, verdict)
            await message.ack()
        except Exception as exc:
            # The channel went away under us: the broker redelivers this message, and the
            # consumer's inbox turns the second handling into a no-op.
            log.warning("bus.settle_failed", queue=self._subscription.queue, error=repr(exc))
            if not isinstance(exc, _RECONNECTABLE):
                await _quietly(message.nack(requeue=True))

    async def cancel(self, timeout: float = 10.0) -> None:
        if self._queue is not None and self._tag is not None:
            await _quietly(self._queue.cancel(self._tag))
            self._tag = None
        if self._inflight:
            _, still = await asyncio.wait(set(self._inflight), timeout=timeout)
            for task in still:
                task.cancel()
        if self._channel is not None:
            await _quietly(self._channel.close())


async def _quietly(awaitable: Any) -> None:
    try:
        await awaitable
    except Exception as exc:
        log.debug("bus.ignored_error", error=repr(exc))


async def _declare(channel: AbstractChannel, subscription: Subscription) -> AbstractQueue:
    events = await channel.declare_exchange(EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC,
                                            durable=True)
    dead = await channel.declare_exchange(DEAD_LETTER_EXCHANGE, aio_pika.ExchangeType.DIRECT,
                                          durable=True)
    if subscription.dead_letter_reader:
        reader = await channel.declare_queue(subscription.queue, durable=True,
                                             arguments=DEAD_LETTER_QUEUE_ARGUMENTS)
        await reader.bind(dead, routing_key=subscription.queue)
        return reader
    if subscription.transient:
        temporary = await channel.declare_queue(subscription.queue, durable=False,
                                                exclusive=True, auto_delete=True)
        for pattern in subscription.bindings:
            await temporary.bind(events, routing_key=pattern)
        return temporary
    dlq = await channel.declare_queue(subscription.dead_letter_queue, durable=True,
                                      arguments=DEAD_LETTER_QUEUE_ARGUMENTS)
    await dlq.bind(dead, routing_key=subscription.dead_letter_queue)
    queue = await channel.declare_queue(subscription.queue, durable=True,
                                        arguments=queue_arguments(subscription))
    for pattern in subscription.bindings:
        await queue.bind(events, routing_key=pattern)
    return queue


class AmqpBus(Bus):
    """A robust connection to RabbitMQ, one confirmed publishing channel, one channel per
    consumer."""

    def __init__(self, url: str | Sequence[str], *, name: str = "cairn",
                 publish_timeout: float = DEFAULT_PUBLISH_TIMEOUT) -> None:
        #: Every broker address (a cluster's nodes), tried in this order.
        self.urls = [url] if isinstance(url, str) else list(url)
        if not self.urls:
            raise BusError("AmqpBus needs at least one broker URL")
        self.url = self.urls[0]
        self.name = name
        self.publish_timeout = publish_timeout
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._dead_exchange: AbstractExchange | None = None
        self._consumers: list[_AmqpConsumer] = []
        #: Why and since when (monotonic) the connection is down; None while it is up.
        self._lost: tuple[str, float] | None = None

    @property
    def where(self) -> str:
        """The brokers' addresses without credentials, for messages."""
        return ", ".join(f"{u.scheme}://{u.host}:{u.port}{u.path}" for u in map(URL, self.urls))

    async def connect(self) -> None:
        try:
            connection = await connect_failover(
                [URL(_with_defaults(u)) for u in self.urls], name=self.name)
        except (OSError, aio_pika.exceptions.AMQPError) as exc:
            raise BusError(f"cannot connect to RabbitMQ at {self.where}: {exc}") from exc
        # The robust connection calls these the moment the socket goes (whatever the cause)
        # and once it has reconnected and restored every channel and consumer: check()
        # reports the outage at once instead of when a publish next fails.
        connection.close_callbacks.add(self._on_lost)
        connection.reconnect_callbacks.add(self._on_restored)
        self._connection = connection
        self._lost = None
        await self._open_publisher()

    async def _open_publisher(self) -> None:
        """The confirmed publishing channel and its exchanges."""
        assert self._connection is not None
        self._channel = await self._connection.channel(publisher_confirms=True,
                                                       on_return_raises=True)
        self._exchange = await self._channel.declare_exchange(
            EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
        self._dead_exchange = await self._channel.declare_exchange(
            DEAD_LETTER_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True)

    def _on_lost(self, connection: object, reason: BaseException | None = None) -> None:
        if self._connection is None or self._lost is not None:
            return  # closing on purpose, or already known to be down
        why = repr(reason) if reason is not None else "closed by the broker"
        self._lost = (why, time.monotonic())
        log.warning("bus.connection_lost", broker=self.where, error=why)

    def _on_restored(self, connection: object) -> None:
        if self._lost is not None:
            log.info("bus.connection_restored", broker=self.where,
                     down_s=round(time.monotonic() - self._lost[1], 3))
        self._lost = None

    async def check(self) -> None:
        if self._connection is None:
            raise BusError(f"not connected to RabbitMQ at {self.where}")
        if self._lost is not None:
            why, since = self._lost
            raise BusError(f"connection to RabbitMQ at {self.where} lost "
                           f"{time.monotonic() - since:.1f}s ago ({why}); reconnecting")

    async def _renew_publisher(self) -> None:
        """Replace a publishing channel whose publishes the broker keeps refusing.

        After a cluster node dies, a channel restored on another node can go on nacking
        every publish to a quorum queue whose leader moved (RabbitMQ 3.10), while a new
        channel publishes at once."""
        old = self._channel
        try:
            await self._open_publisher()
        except Exception as exc:
            log.warning("bus.publisher_renew_failed", error=repr(exc))
            return
        if old is not None:
            await _quietly(old.close())

    def _require(self) -> tuple[AbstractRobustConnection, AbstractChannel, AbstractExchange]:
        if self._connection is None or self._channel is None or self._exchange is None:
            raise BusError("the bus is not connected (call connect() or use 'async with')")
        return self._connection, self._channel, self._exchange

    async def declare(self, subscription: Subscription) -> None:
        connection, _, _ = self._require()
        async with connection.channel() as channel:
            await _declare(channel, subscription)

    async def publish(self, event: Event[Any], *, timeout: float | None = None) -> None:
        # Structured mode: the envelope in the body carries every attribute (time and
        # correlation included). The properties are what clients use: message_id (aiormq
        # matches returns by it) and type for people reading a queue. Each extra property
        # costs an encode and a decode per message on the hot path.
        message = aio_pika.Message(
            encode_event(event),
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            content_type=CONTENT_TYPE,
            message_id=event.id,
            type=event.type,
        )
        started = time.perf_counter()
        try:
            await self._publish(message, event.routing_key, timeout)
        except Exception:
            tell(self.observer.publish_failed, event.type)
            raise
        tell(self.observer.published, event.type, time.perf_counter() - started)

    async def _publish(self, message: aio_pika.Message, routing_key: str,
                       timeout: float | None, dead_letter: bool = False) -> None:
        """Publish with confirm, waiting out a reconnect within the timeout."""
        limit = self.publish_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while True:
            _, _, events_exchange = self._require()
            exchange = self._dead_exchange if dead_letter else events_exchange
            assert exchange is not None
            remaining = deadline - time.monotonic()
            try:
                # The deadline covers waiting for a channel that is being restored on
                # another node too, not only the confirm (aio-pika's timeout does not).
                async with asyncio.timeout(max(remaining, 0.001)):
                    await exchange.publish(message, routing_key, mandatory=True,
                                           timeout=max(remaining, 0.001))
                return
            except aio_pika.exceptions.DeliveryError as exc:
                if isinstance(exc.frame, Basic.Return):
                    raise UnroutableEvent(
                        f"event {message.type} ({routing_key}) is bound to no queue: "
                        "it would be lost") from None
                reason = f"broker refused the event ({exc.frame!r})"
                await self._renew_publisher()
            except TimeoutError:
                raise PublishTimeout(
                    f"no confirm for {routing_key} within {limit:.1f}s") from None
            except _RECONNECTABLE as exc:
                reason = repr(exc)
            except asyncio.CancelledError:
                # aiormq cancels the confirm it waits for when the connection dies (a
                # partition past the heartbeat); only a cancel of this task is ours to obey.
                current = asyncio.current_task()
                if current is None or current.cancelling():
                    raise
                reason = "the connection was lost before the broker confirmed"
            if time.monotonic() + 0.2 >= deadline:
                raise PublishTimeout(f"could not publish {routing_key} within {limit:.1f}s: "
                                     f"{reason}")
            await asyncio.sleep(0.2)

    async def send_dead_letter(self, message: AbstractIncomingMessage,
                               subscription: Subscription, verdict: Verdict) -> None:
        headers = dict(message.headers or {})
        headers.update({
            HEADER_REASON: verdict.reason[:4000],
            HEADER_ROUTING_KEY: message.routing_key or "",
            HEADER_QUEUE: subscription.queue,
            HEADER_ATTEMPTS: verdict.attempts,
        })
        dead = aio_pika.Message(message.body, headers=headers,
                                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                                content_type=message.content_type,
                                message_id=message.message_id, type=message.type)
        await self._publish(dead, subscription.dead_letter_queue, None, dead_letter=True)

    async def subscribe(self, subscription: Subscription, handler: Handler) -> Consumer:
        connection, _, _ = self._require()
        consumer = _AmqpConsumer(self, subscription, handler)
        await consumer.start(connection)
        self._consumers.append(consumer)
        return consumer

    async def dead_letters(self, queue: str, *, remove: bool = False) -> list[DeadLetter]:
        connection, _, _ = self._require()
        name = Subscription(queue, ()).dead_letter_queue
        found: list[DeadLetter] = []
        async with connection.channel() as channel:
            dlq = await _existing_queue(channel, name)
            held: list[AbstractIncomingMessage] = []
            while (message := await dlq.get(no_ack=False, fail=False)) is not None:
                held.append(message)
                found.append(_dead_letter_of(message, queue))
            for message in held:
                await (message.ack() if remove else message.nack(requeue=True))
        return found

    async def queue_depth(self, queue: str) -> int:
        connection, _, _ = self._require()
        async with connection.channel() as channel:
            declared = await _existing_queue(channel, queue)
            return int(declared.declaration_result.message_count or 0)

    async def close(self, timeout: float = 10.0) -> None:
        consumers, self._consumers = self._consumers, []
        await asyncio.gather(*(c.cancel(timeout) for c in consumers))
        connection = self._connection
        self._connection = self._channel = self._exchange = self._dead_exchange = None
        self._lost = None
        if connection is not None:
            await _quietly(connection.close())


async def _existing_queue(channel: AbstractChannel, name: str) -> AbstractQueue:
    """A queue that must already exist: the same :class:`BusError` as the embedded broker."""
    try:
        return await channel.declare_queue(name, passive=True)
    except aiormq.exceptions.ChannelNotFoundEntity:
        raise BusError(f"no queue named {name!r} has been declared") from None


def _dead_letter_of(message: AbstractIncomingMessage, queue: str) -> DeadLetter:
    headers: dict[str, Any] = dict(message.headers or {})
    reason = headers.get(HEADER_REASON)
    routing_key = headers.get(HEADER_ROUTING_KEY)
    if reason is None:
        # Dead-lettered by the broker itself (delivery limit): read its x-death record.
        deaths = headers.get("x-death") or [{}]
        first = deaths[0] if isinstance(deaths, list) and deaths else {}
        cause = headers.get("x-first-death-reason", first.get("reason", "unknown"))
        reason = f"dead-lettered by the broker: {cause!s}"
        if cause == "delivery_limit":
            reason += " (its consumers kept dying)"
        keys = first.get("routing-keys") or [message.routing_key or ""]
        routing_key = keys[0]
    return DeadLetter(
        body=message.body,
        reason=_text(reason),
        routing_key=_text(routing_key or ""),
        queue=_text(headers.get(HEADER_QUEUE, queue)),
        headers=headers,
    )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
