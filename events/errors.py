"""One exception hierarchy for the whole project.

Every error cairn raises on purpose derives from :class:`CairnError`, so that a CLI or a
service shell can turn any of them into a clear message and exit code without catching
broad ``Exception``.
"""

from __future__ import annotations


class CairnError(Exception):
    """Base of every error cairn raises on purpose. ``str()`` is meant for a person."""


class ConfigError(CairnError):
    """The configuration is missing, malformed or inconsistent."""


class EventValidationError(CairnError):
    """An event does not satisfy its schema.

    ``field`` is the JSON path of the first failing field (``data.outcome``), so a person
    can fix the input without reading the schema.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.reason = message


class UnknownEventType(EventValidationError):
    """The envelope names a type/version pair that has no schema."""


class BusError(CairnError):
    """The bus could not do what was asked (connection, declaration, closed bus)."""


class TelemetryError(CairnError):
    """Live telemetry cannot reach its broker (what a health check reports)."""


class UnroutableEvent(BusError):
    """A mandatory publish matched no queue: the event would have been lost."""


class PublishTimeout(BusError):
    """The broker did not confirm a publish within the timeout."""


class TransientError(CairnError):
    """Raised by a handler for a failure worth retrying (network, lock, busy peer).

    The bus retries the delivery with exponential back-off a bounded number of times and then
    dead-letters it with the last error as reason.
    """


class RejectEvent(CairnError):
    """Raised by a handler for an event that can never succeed: dead-letter it at once."""
