"""What happens to a delivery: the one place where ack, retry and dead-letter are decided.

Transports call :func:`process` for every message, with the routing key it arrived on, and
then carry out its :class:`Verdict`; they never decide on their own. This keeps the two
transports identical in behaviour and makes the rules testable without a broker.

An event is handled only if it arrived on its own routing key (its type, a dot, its
subject). The broker's topic permissions authorise a publisher by the routing key alone, so a
builder allowed to send ``build-done.*`` could otherwise slip a ``package-published`` or a
``commit-seen`` envelope onto a ``build-done`` key and have it acted on as if its real
publisher had sent it. Such a message is dead-lettered with the reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import structlog

from events.bus import NO_OBSERVER, BusObserver, Handler, Subscription
from events.envelope import Event, decode_event
from events.errors import EventValidationError, RejectEvent

log = structlog.get_logger("cairn.bus")


class Disposition(StrEnum):
    ACK = "ack"
    DEAD_LETTER = "dead-letter"


@dataclass(frozen=True)
class Verdict:
    disposition: Disposition
    reason: str = ""
    attempts: int = 0
    event: Event[Any] | None = None


#: The ``type`` label of a body that did not decode as an event.
INVALID_TYPE = "invalid"


def tell(report: Callable[..., None], *args: Any) -> None:
    """Call an observer method; a failing observer is logged and never changes a verdict."""
    try:
        report(*args)
    except Exception as exc:
        log.warning("bus.observer_failed", error=repr(exc))


def _parse(body: bytes, subscription: Subscription, decoded: Event[Any] | None
           ) -> Event[Any] | Verdict:
    if len(body) > subscription.max_body_bytes:
        return Verdict(
            Disposition.DEAD_LETTER,
            f"body of {len(body)} bytes exceeds the limit of {subscription.max_body_bytes}",
        )
    if decoded is not None:
        return decoded
    try:
        return decode_event(body)
    except EventValidationError as exc:
        return Verdict(Disposition.DEAD_LETTER, f"invalid event: {exc}")


def misrouted(event: Event[Any], routing_key: str) -> str | None:
    """Why ``event`` may not be taken as having arrived on ``routing_key`` (None: it may).

    The subject itself is checked against the data when the event is decoded, so a match
    here means the routing key, the envelope and the payload all say the same thing."""
    if routing_key == event.routing_key:
        return None
    return (f"routing key {routing_key!r} does not match the event's type and subject "
            f"({event.routing_key!r})")


async def process(body: bytes, routing_key: str, subscription: Subscription,
                  handler: Handler, observer: BusObserver = NO_OBSERVER,
                  decoded: Event[Any] | None = None) -> Verdict:
    """Decode, validate and handle one delivery, retrying a failing handler with back-off.

    ``routing_key`` is the key the message was published with (for a dead-letter reader:
    the key it had before it was dead-lettered). Returns how the transport must settle the
    message. Cancellation (shutdown, a consumer being torn down) propagates: the transport
    then leaves the message unacknowledged so the broker delivers it again.

    ``decoded``: what ``body`` decodes to, when the transport decoded it already and the
    body never left the process (the embedded broker decodes an event once for every queue
    it reaches); a body from the network is always decoded here.
    """
    parsed = _parse(body, subscription, decoded)
    if isinstance(parsed, Verdict):
        log.warning("event.dead_lettered", queue=subscription.queue, reason=parsed.reason)
        tell(observer.dead_lettered, INVALID_TYPE, subscription.queue)
        return parsed
    mismatch = misrouted(parsed, routing_key)
    if mismatch is not None:
        log.warning("event.dead_lettered", queue=subscription.queue, reason=mismatch,
                    event_id=parsed.id, event_type=parsed.type, event_source=parsed.source)
        tell(observer.dead_lettered, parsed.type, subscription.queue)
        return Verdict(Disposition.DEAD_LETTER, mismatch, event=parsed)
    # bind/reset rather than structlog's bound_contextvars(): that one copies and scans the
    # whole context on every message, which showed up as the largest cost of consuming.
    tokens = structlog.contextvars.bind_contextvars(
        event_id=parsed.id, event_type=parsed.type, correlation_id=parsed.correlationid
    )
    try:
        return await _handle(parsed, subscription, handler, observer)
    finally:
        structlog.contextvars.reset_contextvars(**tokens)


async def _handle(event: Event[Any], subscription: Subscription, handler: Handler,
                  observer: BusObserver) -> Verdict:
    """Run the handler, retrying ordinary failures with back-off up to ``max_attempts``."""
    attempt = 0
    while True:
        attempt += 1
        try:
            await handler(event)
        except RejectEvent as exc:
            reason = f"rejected by handler: {exc}"
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            if attempt < subscription.max_attempts:
                delay = subscription.retry_delay(attempt)
                log.warning("event.retry", queue=subscription.queue, attempt=attempt,
                            delay_s=delay, error=reason)
                tell(observer.retried, event.type, subscription.queue)
                await asyncio.sleep(delay)
                continue
            reason = f"failed {attempt} times, last: {reason}"
        else:
            tell(observer.handled, event.type, subscription.queue)
            return Verdict(Disposition.ACK, attempts=attempt, event=event)
        log.error("event.dead_lettered", queue=subscription.queue, reason=reason)
        tell(observer.dead_lettered, event.type, subscription.queue)
        return Verdict(Disposition.DEAD_LETTER, reason, attempt, event)
