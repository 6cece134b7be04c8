"""Pick a transport from a URL: ``memory://`` (embedded) or ``amqp://`` / ``amqps://``."""

from __future__ import annotations

from events.amqp import AmqpBus
from events.bus import Bus
from events.errors import ConfigError
from events.memory import MemoryBroker, MemoryBus

#: The broker that every ``memory://`` bus of this process shares (``cairn up``).
_PROCESS_BROKER = MemoryBroker()


def bus_from_url(url: str, *, name: str = "cairn", publish_timeout: float = 10.0) -> Bus:
    """A bus for a URL; the embedded broker is shared by everything in this process."""
    scheme = url.split(":", 1)[0].lower()
    if scheme == "memory":
        return MemoryBus(_PROCESS_BROKER)
    if scheme in ("amqp", "amqps"):
        return AmqpBus(url, name=name, publish_timeout=publish_timeout)
    raise ConfigError(f"bus url {url!r}: scheme must be memory://, amqp:// or amqps://")
