"""cairn's event contract and bus.

Everything that crosses a service boundary is an :class:`~events.envelope.Event`: a
CloudEvents 1.0 envelope around one typed, versioned payload. This package holds the
contract (envelope, payloads, schemas), the bus port and its two transports (RabbitMQ and
the embedded in-process broker), and the outbox/inbox helpers that make effects exactly-once
on an at-least-once bus.
"""

from events.envelope import Event, decode_event, encode_event, new_event
from events.errors import (
    BusError,
    CairnError,
    EventValidationError,
    PublishTimeout,
    RejectEvent,
    TransientError,
    UnroutableEvent,
)

__all__ = [
    "BusError",
    "CairnError",
    "Event",
    "EventValidationError",
    "PublishTimeout",
    "RejectEvent",
    "TransientError",
    "UnroutableEvent",
    "decode_event",
    "encode_event",
    "new_event",
]
