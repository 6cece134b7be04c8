"""What happens to a delivery: the one place where ack, retry and dead-letter are decided.

Transports call :func:`process` for every message and then carry out its :class:`Verdict`;
they never decide on their own. This keeps the two transports identical in behaviour and
makes the rules testable without a broker.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import structlog

from events.bus import Handler, Subscription
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


def _parse(body: bytes, subscription: Subscription) -> Event[Any] | Verdict:
    if len(body) > subscription.max_body_bytes:
        return Verdict(
            Disposition.DEAD_LETTER,
            f"body of {len(body)} bytes exceeds the limit of {subscription.max_body_bytes}",
        )
    try:
        return decode_event(body)
    except EventValidationError as exc:
        return Verdict(Disposition.DEAD_LETTER, f"invalid event: {exc}")


async def process(body: bytes, subscription: Subscription, handler: Handler) -> Verdict:
    """Decode, validate and handle one delivery, retrying a failing handler with back-off.

    Returns how the transport must settle the message. Cancellation (shutdown, a consumer
    being torn down) propagates: the transport then leaves the message unacknowledged so the
    broker delivers it again.
    """
    parsed = _parse(body, subscription)
    if isinstance(parsed, Verdict):
        log.warning("event.dead_lettered", queue=subscription.queue, reason=parsed.reason)
        return parsed
    # bind/reset rather than structlog's bound_contextvars(): that one copies and scans the
    # whole context on every message, which showed up as the largest cost of consuming.
    tokens = structlog.contextvars.bind_contextvars(
        event_id=parsed.id, event_type=parsed.type, correlation_id=parsed.correlationid
    )
    try:
        return await _handle(parsed, subscription, handler)
    finally:
        structlog.contextvars.reset_contextvars(**tokens)


async def _handle(event: Event[Any], subscription: Subscription, handler: Handler) -> Verdict:
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
                await asyncio.sleep(delay)
                continue
            reason = f"failed {attempt} times, last: {reason}"
        else:
            return Verdict(Disposition.ACK, attempts=attempt, event=event)
        log.error("event.dead_lettered", queue=subscription.queue, reason=reason)
        return Verdict(Disposition.DEAD_LETTER, reason, attempt, event)
