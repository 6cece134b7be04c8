"""The bus port: what every service needs from a message broker, and nothing more.

Two transports implement it — :mod:`events.amqp` (RabbitMQ, production) and
:mod:`events.memory` (the embedded in-process broker of ``cairn up``) — and one contract
test suite (``tests/contract``) runs against both, so a service cannot tell them apart.

Semantics every transport honours:

* ``publish`` is persistent, confirmed, mandatory (an event no queue is bound for raises
  :class:`~events.errors.UnroutableEvent`) and bounded by a timeout
  (:class:`~events.errors.PublishTimeout`).
* ``subscribe`` consumes a named durable queue with its bindings and a prefetch; what
  happens to each delivery is decided in one place, :func:`events.consume.process`: ack on
  success, bounded retries with back-off for failures, dead letter (with reason and original
  routing key in headers) for bodies that are not events, events that did not arrive on
  their own routing key, and events that keep failing.
* a work queue (``Subscription.work_queue``) is shared by competing consumers and gives a
  message back when its consumer dies; after ``delivery_limit`` deliveries it is dead-lettered.
* ``close`` stops consuming, lets in-flight handlers finish up to a timeout, then closes;
  unfinished deliveries are not acknowledged, so the broker gives them to someone else.
* ``check`` answers at once, from the connection's own state (the transport learns of a
  lost connection when it happens, not by polling): it raises :class:`~events.errors.BusError`
  saying why while the bus cannot publish or consume, and returns once it can again.
* every bus reports its verdicts and publishes to its :class:`BusObserver` (metrics), set
  with :meth:`Bus.observe`; by default nobody listens.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from events.envelope import MAX_BODY_BYTES, Event
from events.errors import BusError
from events.names import dead_letter_queue

#: A handler receives one validated event. Returning acknowledges it; raising
#: :class:`~events.errors.RejectEvent` dead-letters it; any other exception is retried.
Handler = Callable[[Event[Any]], Awaitable[None]]

DEFAULT_PUBLISH_TIMEOUT = 10.0


@dataclass(frozen=True)
class Subscription:
    """A durable queue, what it is bound to, and how its deliveries are handled."""

    queue: str
    bindings: tuple[str, ...]
    prefetch: int = 16
    #: A work queue: quorum queue, competing consumers, ``delivery_limit`` deliveries at most.
    work_queue: bool = False
    #: Deliveries (crashed consumers included) before the broker dead-letters a message.
    delivery_limit: int = 10
    #: Attempts of a failing handler, within one delivery, before dead-lettering.
    max_attempts: int = 4
    retry_base_delay: float = 0.05
    retry_max_delay: float = 5.0
    max_body_bytes: int = MAX_BODY_BYTES
    #: A private, non-durable queue that disappears with its consumer (``cairn events tail``);
    #: it has no dead-letter queue: what it cannot handle is logged and dropped.
    transient: bool = False
    #: Consume another queue's dead-letter queue (declared as such, with no bindings);
    #: what its handler cannot take is logged and dropped, there is no dead-dead queue.
    dead_letter_reader: bool = False

    @property
    def terminal(self) -> bool:
        """No dead-letter queue behind this one."""
        return self.transient or self.dead_letter_reader

    @property
    def dead_letter_queue(self) -> str:
        return dead_letter_queue(self.queue)

    def retry_delay(self, attempt: int) -> float:
        """Exponential back-off after the given (1-based) failed attempt."""
        return float(min(self.retry_max_delay, self.retry_base_delay * (2 ** (attempt - 1))))


class BusObserver:
    """What a bus tells metrics: verdicts (from :func:`events.consume.process`) and
    publishes (from the transports).

    The base class ignores everything, so a bus works the same with no metrics; a service
    gives its bus a subclass with :meth:`Bus.observe` (see ``daemon.metrics``). This keeps
    ``events`` free of any metrics library. Methods must be quick and must not block; one
    that raises is logged and never changes what the bus does.
    """

    def handled(self, event_type: str, queue: str) -> None:
        """A handler accepted an event (the message is acknowledged)."""

    def retried(self, event_type: str, queue: str) -> None:
        """A handler failed and is about to run again after a back-off."""

    def dead_lettered(self, event_type: str, queue: str) -> None:
        """A message was dead-lettered (or dropped, on a terminal queue)."""

    def published(self, event_type: str, seconds: float) -> None:
        """The broker confirmed a publish that took ``seconds``."""

    def publish_failed(self, event_type: str) -> None:
        """A publish raised (unroutable, timeout, connection lost)."""


#: The observer of a bus nobody observes.
NO_OBSERVER = BusObserver()


@dataclass(frozen=True)
class DeadLetter:
    """A message as found in a dead-letter queue."""

    body: bytes
    reason: str
    routing_key: str
    queue: str
    headers: Mapping[str, Any] = field(default_factory=dict)


class Consumer(abc.ABC):
    """A running subscription; ``cancel`` stops it after in-flight handlers finish."""

    @abc.abstractmethod
    async def cancel(self, timeout: float = 10.0) -> None: ...


class Bus(abc.ABC):
    """The port. Use as ``async with bus:`` or call :meth:`connect` and :meth:`close`."""

    #: Told about verdicts and publishes; replaced with :meth:`observe`.
    observer: BusObserver = NO_OBSERVER

    def observe(self, observer: BusObserver) -> None:
        """Report this bus's verdicts and publishes to ``observer`` from now on, for the
        consumers it already runs too (they read it at each delivery)."""
        self.observer = observer

    @abc.abstractmethod
    async def check(self) -> None:
        """Return if the bus can publish and consume now; raise :class:`BusError` saying
        why not (never connected, connection lost and since when, closed). Answers from
        state the transport keeps current, without a round trip to the broker."""

    @abc.abstractmethod
    async def connect(self) -> None:
        """Connect and declare the exchanges."""

    @abc.abstractmethod
    async def declare(self, subscription: Subscription) -> None:
        """Declare a queue, its dead-letter queue and its bindings, without consuming.

        Idempotent; lets a publisher make sure its events have somewhere to go before the
        consuming service has started."""

    @abc.abstractmethod
    async def publish(self, event: Event[Any], *, timeout: float | None = None) -> None:
        """Publish one event; returns once the broker has confirmed it."""

    @abc.abstractmethod
    async def subscribe(self, subscription: Subscription, handler: Handler) -> Consumer:
        """Declare the queue and start consuming it with ``handler``."""

    @abc.abstractmethod
    async def dead_letters(self, queue: str, *, remove: bool = False) -> list[DeadLetter]:
        """The messages in a queue's dead-letter queue (left there unless ``remove``)."""

    @abc.abstractmethod
    async def queue_depth(self, queue: str) -> int:
        """Messages ready in a queue (not counting those being handled)."""

    @abc.abstractmethod
    async def close(self, timeout: float = 10.0) -> None:
        """Stop every consumer (draining in-flight handlers up to ``timeout``), then close."""

    async def __aenter__(self) -> Bus:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class PublishOnlyBus(Bus):
    """A bus for code that only publishes — a dry-run replay, a test double recording what
    was sent. Subclasses implement :meth:`publish`; consuming from it is refused clearly."""

    async def connect(self) -> None:
        return None

    async def check(self) -> None:
        return None

    async def declare(self, subscription: Subscription) -> None:
        return None

    async def subscribe(self, subscription: Subscription, handler: Handler) -> Consumer:
        raise BusError(f"{type(self).__name__} only publishes: nothing can consume from it "
                       f"(asked for {subscription.queue})")

    async def dead_letters(self, queue: str, *, remove: bool = False) -> list[DeadLetter]:
        return []

    async def queue_depth(self, queue: str) -> int:
        return 0

    async def close(self, timeout: float = 10.0) -> None:
        return None
