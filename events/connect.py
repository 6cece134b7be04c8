"""Pick a transport from a URL: ``memory://`` (embedded) or ``amqp://`` / ``amqps://``.

A RabbitMQ bus may name several brokers (the nodes of a cluster): a list of URLs, or one
string of comma-separated URLs (``amqp://u:p@rmq1/cairn,amqp://u:p@rmq2/cairn``; a comma
inside a password is written ``%2C``). The client connects to the first that answers and
moves to the next when its node dies.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from events.amqp import AmqpBus
from events.bus import Bus
from events.errors import ConfigError
from events.memory import MemoryBroker, MemoryBus

#: The broker that every ``memory://`` bus of this process shares (``cairn up``).
_PROCESS_BROKER = MemoryBroker()

AMQP_SCHEMES = ("amqp", "amqps")


def broker_urls(url: str | Sequence[str]) -> list[str]:
    """Every address of a bus URL (a list, or comma-separated in one string), checked:
    each is ``amqp://`` or ``amqps://`` with a host, or the whole is one ``memory://``."""
    parts = [url] if isinstance(url, str) else list(url)
    urls = [item.strip() for part in parts for item in part.split(",") if item.strip()]
    if not urls:
        raise ConfigError("bus url is empty: give memory:// or one or more amqp:// URLs")
    schemes = [u.split(":", 1)[0].lower() for u in urls]
    if "memory" in schemes:
        if len(urls) > 1:
            raise ConfigError(f"bus url {_show(urls)}: memory:// cannot be one of several")
        return urls
    for address, scheme in zip(urls, schemes, strict=True):
        if scheme not in AMQP_SCHEMES:
            raise ConfigError(f"bus url {_show([address])}: scheme must be memory://, "
                              "amqp:// or amqps://")
        if not urlsplit(address).hostname:
            raise ConfigError(f"bus url {_show([address])}: no broker host")
    return urls


def broker_endpoints(url: str | Sequence[str]) -> list[tuple[str, int]]:
    """``(host, port)`` of each RabbitMQ address (none for the embedded broker)."""
    endpoints = []
    for address in broker_urls(url):
        parts = urlsplit(address)
        if parts.scheme.lower() in AMQP_SCHEMES and parts.hostname:
            default = 5671 if parts.scheme.lower() == "amqps" else 5672
            endpoints.append((parts.hostname, parts.port or default))
    return endpoints


def _show(urls: list[str]) -> str:
    shown = []
    for address in urls:
        parts = urlsplit(address)
        if parts.password:
            address = address.replace(f":{parts.password}@", ":***@", 1)
        shown.append(address)
    return repr(",".join(shown))


def bus_from_url(url: str | Sequence[str], *, name: str = "cairn",
                 publish_timeout: float = 10.0) -> Bus:
    """A bus for a URL (or several RabbitMQ addresses); the embedded broker is shared by
    everything in this process."""
    urls = broker_urls(url)
    if urls[0].split(":", 1)[0].lower() == "memory":
        return MemoryBus(_PROCESS_BROKER)
    return AmqpBus(urls, name=name, publish_timeout=publish_timeout)
