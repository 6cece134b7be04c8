"""Live telemetry: build log lines and builder presence, over MQTT or in process.

Telemetry is high-volume and ephemeral, so it does not travel on the event bus. Two
implementations of one small port: :class:`MqttTelemetry` (Mosquitto, aiomqtt 2.x,
reconnecting, retained status with a last will) and :class:`MemoryTelemetry` (``cairn up``
without ``--mqtt``). Publishing never blocks a build: messages go through a bounded queue,
and when the broker is away the oldest log lines are dropped (the full log is a file).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import aiomqtt
import structlog

from events.errors import ConfigError, TelemetryError

log = structlog.get_logger("cairn.telemetry")

QUEUE_LIMIT = 10_000


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool = False


@dataclass(frozen=True)
class MqttAddress:
    """One broker an MQTT client may connect to.

    ``mqtt://[user:pass@]host[:1883]`` or ``mqtts://[user:pass@]host[:8883]``. A ``mqtts://``
    address verifies the broker against ``cafile`` (the system's CAs when absent) and, for
    mutual TLS, presents ``certfile``/``keyfile``; all three come from the URL's query, the
    names the AMQP client reads too (``mqtts://mq1:8883?cafile=/etc/cairn/tls/ca.pem&...``).
    """

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False
    cafile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None

    def tls_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.cafile)
        if self.certfile:
            context.load_cert_chain(self.certfile, self.keyfile)
        return context

    def __str__(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def mqtt_addresses(url: str) -> list[MqttAddress]:
    """Every broker of an MQTT URL (several comma-separated, tried in turn)."""
    addresses = []
    for item in (part.strip() for part in url.split(",")):
        if not item:
            continue
        parts = urlsplit(item)
        scheme = parts.scheme.lower()
        if scheme not in ("mqtt", "mqtts", "tcp", ""):
            raise ConfigError(f"mqtt url {item!r}: scheme must be mqtt:// or mqtts://")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        tls = scheme == "mqtts"
        addresses.append(MqttAddress(
            host=parts.hostname or "127.0.0.1", port=parts.port or (8883 if tls else 1883),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None, tls=tls,
            cafile=query.get("cafile"), certfile=query.get("certfile"),
            keyfile=query.get("keyfile")))
    if not addresses:
        raise ConfigError(f"mqtt url {url!r} names no broker")
    return addresses


def topic_matches(pattern: str, topic: str) -> bool:
    """MQTT topic filter matching (``+`` one level, ``#`` the rest)."""
    return aiomqtt.Topic(topic).matches(pattern)


class Telemetry(abc.ABC):
    """Publish and watch telemetry topics."""

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Queue a message; never blocks, never raises for a missing broker."""

    @abc.abstractmethod
    def subscribe(self, pattern: str) -> AsyncIterator[Message]:
        """Messages on topics matching ``pattern`` (retained ones first), until stopped."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Deliver what is queued (briefly), then disconnect."""

    @abc.abstractmethod
    async def check(self) -> None:
        """Return if messages published now reach the broker; raise
        :class:`~events.errors.TelemetryError` saying why not. Answers from the connection's
        state, which the client updates the moment it changes."""


class MemoryTelemetry(Telemetry):
    """In-process telemetry with MQTT's retained-message semantics."""

    def __init__(self) -> None:
        self._retained: dict[str, Message] = {}
        self._watchers: list[tuple[str, asyncio.Queue[Message | None]]] = []

    async def start(self) -> None:
        return None

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        message = Message(topic, payload, retain)
        if retain and not payload:  # MQTT: an empty retained message clears the topic
            self._retained.pop(topic, None)
        elif retain:
            self._retained[topic] = message
        for pattern, queue in self._watchers:
            if topic_matches(pattern, topic) and queue.qsize() < QUEUE_LIMIT:
                queue.put_nowait(message)

    async def subscribe(self, pattern: str) -> AsyncIterator[Message]:
        queue: asyncio.Queue[Message | None] = asyncio.Queue()
        for retained in list(self._retained.values()):
            if topic_matches(pattern, retained.topic):
                queue.put_nowait(retained)
        entry = (pattern, queue)
        self._watchers.append(entry)
        try:
            while (message := await queue.get()) is not None:
                yield message
        finally:
            self._watchers.remove(entry)

    async def stop(self) -> None:
        """Nothing to disconnect; watchers end when their tasks are cancelled. (Several
        services of one process share one instance, so one stopping must not end the
        others' subscriptions.)"""

    async def check(self) -> None:
        """In process: there is no connection to lose."""


class MqttTelemetry(Telemetry):
    """aiomqtt client that reconnects forever, to the next broker of its URL each time
    (:func:`mqtt_addresses`); ``will`` is published by the broker if this client vanishes
    (a builder's ``offline`` status)."""

    def __init__(self, url: str, *, client_id: str | None = None,
                 will: Message | None = None, reconnect_delay: float = 1.0) -> None:
        self.addresses = mqtt_addresses(url)
        self._current = 0
        self.client_id = client_id or f"cairn-{uuid.uuid4().hex[:10]}"
        self.will = will
        self.reconnect_delay = reconnect_delay
        self._outgoing: asyncio.Queue[Message] = asyncio.Queue()
        self._retained: dict[str, Message] = {}
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        #: Why and since when (monotonic) the client is not connected (while ``connected``
        #: is clear).
        self._down: tuple[str, float] = ("not connected yet", time.monotonic())
        self._ever_connected = False

    @property
    def address(self) -> MqttAddress:
        """The broker in use (or tried next)."""
        return self.addresses[self._current]

    def _next_address(self) -> None:
        self._current = (self._current + 1) % len(self.addresses)

    def _client(self, client_id: str, will: Message | None) -> aiomqtt.Client:
        address = self.address
        return aiomqtt.Client(
            address.host, address.port, username=address.username,
            password=address.password, tls_context=address.tls_context(),
            identifier=client_id, keepalive=10,
            will=aiomqtt.Will(will.topic, will.payload, qos=1, retain=will.retain)
            if will else None,
        )

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"mqtt-{self.client_id}")

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        message = Message(topic, payload, retain)
        if retain:
            self._retained[topic] = message
        if self._outgoing.qsize() >= QUEUE_LIMIT:
            with contextlib.suppress(asyncio.QueueEmpty):
                self._outgoing.get_nowait()
                self._outgoing.task_done()
        self._outgoing.put_nowait(message)

    async def _run(self) -> None:
        while True:
            try:
                async with self._client(self.client_id, self.will) as client:
                    if self._ever_connected:
                        log.info("telemetry.reconnected", broker=str(self.address),
                                 down_s=round(time.monotonic() - self._down[1], 3))
                    self._ever_connected = True
                    self.connected.set()
                    # The broker may have restarted: state our retained topics again.
                    for message in list(self._retained.values()):
                        await client.publish(message.topic, message.payload, qos=1, retain=True)
                    await _first_to_fail(self._send(client), _until_disconnected(client))
            except aiomqtt.MqttError as exc:
                if self.connected.is_set():
                    self._down = (str(exc), time.monotonic())
                    log.warning("telemetry.disconnected", broker=str(self.address),
                                error=str(exc))
                else:  # still down: the latest reason, the same since
                    self._down = (str(exc), self._down[1])
                self.connected.clear()
                self._next_address()
                await asyncio.sleep(self.reconnect_delay)

    async def _send(self, client: aiomqtt.Client) -> None:
        while True:
            message = await self._outgoing.get()
            try:  # a line in flight when the connection drops is lost: the log file has it
                await client.publish(message.topic, message.payload,
                                     qos=1 if message.retain else 0, retain=message.retain)
            finally:
                self._outgoing.task_done()

    async def check(self) -> None:
        if self._task is None:
            raise TelemetryError(f"telemetry to {self.address} is not started")
        if not self.connected.is_set():
            why, since = self._down
            raise TelemetryError(f"not connected to the MQTT broker at "
                                 f"{self.address.host}:{self.address.port} "
                                 f"for {time.monotonic() - since:.1f}s ({why}); reconnecting")

    async def subscribe(self, pattern: str) -> AsyncIterator[Message]:
        while True:
            try:
                async with self._client(f"{self.client_id}-sub-{uuid.uuid4().hex[:6]}",
                                        None) as client:
                    await client.subscribe(pattern, qos=1)
                    async for incoming in client.messages:
                        payload = incoming.payload
                        data = payload if isinstance(payload, bytes) else str(payload).encode()
                        yield Message(str(incoming.topic), data, bool(incoming.retain))
            except aiomqtt.MqttError as exc:
                log.warning("telemetry.subscribe_lost", pattern=pattern,
                            broker=str(self.address), error=str(exc))
                self._next_address()
                await asyncio.sleep(self.reconnect_delay)

    async def stop(self) -> None:
        if self._task is None:
            return
        if self.connected.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._outgoing.join(), 2.0)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None


async def _until_disconnected(client: aiomqtt.Client) -> None:
    """Return never; raise :class:`aiomqtt.MqttError` the moment the connection drops.

    A client that only publishes would otherwise learn of a lost broker at its next
    publish, which for an idle builder may be minutes away."""
    async for _ in client.messages:  # nothing is subscribed: only a disconnect ends this
        pass
    raise aiomqtt.MqttError("the MQTT message stream ended")


async def _first_to_fail(*work: Coroutine[Any, Any, None]) -> None:
    """Run ``work`` together until one of them ends; cancel the others, re-raise its error."""
    tasks = [asyncio.ensure_future(w) for w in work]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        task.result()


#: The in-process telemetry every ``memory://`` user of this process shares (``cairn up``).
_PROCESS_TELEMETRY = MemoryTelemetry()


def telemetry_from_url(url: str | None, **kwargs: object) -> Telemetry:
    """``None`` or ``memory://`` → in-process (shared); ``mqtt://host:port`` (or
    ``mqtts://``, several comma-separated) → Mosquitto."""
    if not url or url.startswith("memory:"):
        return _PROCESS_TELEMETRY
    return MqttTelemetry(url, **kwargs)  # type: ignore[arg-type]
