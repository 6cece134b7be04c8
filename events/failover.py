"""A robust AMQP connection over several broker addresses (the nodes of a cluster).

aio-pika's robust connection reconnects to the one URL it was given; against a cluster that
is the node that just died. :class:`FailoverConnection` keeps aio-pika's recovery (channels,
exchanges, queues and consumers restored on the new connection) and only changes *where*
each attempt goes: after a connection drops or an attempt fails, the next attempt goes to the
next address, round the list. The first connection tries every address in turn before
giving up, so a client whose first address is dead still starts.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from typing import Any

import aio_pika
import structlog
from yarl import URL

log = structlog.get_logger("cairn.bus.failover")


def redacted(url: URL | str) -> str:
    """A URL fit for logs and error messages: the password replaced."""
    parsed = URL(str(url))
    return str(parsed.with_password("***")) if parsed.password else str(parsed)


class FailoverConnection(aio_pika.RobustConnection):
    """A robust connection whose every new attempt goes to the next broker address."""

    def __init__(self, addresses: Sequence[URL], start: int = 0, **kwargs: Any) -> None:
        if not addresses:
            raise ValueError("a failover connection needs at least one broker address")
        self._addresses = tuple(addresses)
        self._current = start % len(self._addresses)
        super().__init__(self._addresses[self._current], **kwargs)

    # aio-pika reads ``self.url`` for every attempt (and for its log lines); the address
    # list is fixed, so what the base class assigns at construction is ignored.
    @property
    def url(self) -> URL:
        return self._addresses[self._current]

    @url.setter
    def url(self, value: URL) -> None:
        return None

    @property
    def address(self) -> str:
        """The broker address in use (or tried next), password redacted."""
        return redacted(self.url)

    async def _on_connection_close(self, closing: asyncio.Future[Any]) -> None:
        # Called when an established connection drops and when an attempt fails: either
        # way, the next attempt goes to the next node.
        if len(self._addresses) > 1 and not self.close_called:
            gone = self.address
            self._current = (self._current + 1) % len(self._addresses)
            log.warning("bus.failover", lost=gone, next=self.address)
        await super()._on_connection_close(closing)


async def connect_failover(addresses: Sequence[URL], *, name: str,
                           ssl_context: ssl.SSLContext | None = None,
                           timeout: float = 15.0) -> FailoverConnection:
    """Connect to the first address that answers, trying each once in order; the returned
    connection then fails over by itself. Raises the last error when none answers."""
    errors: list[str] = []
    for start in range(len(addresses)):
        connection = FailoverConnection(addresses, start, ssl_context=ssl_context,
                                        client_properties={"connection_name": name})
        try:
            await connection.connect(timeout=timeout)
        except (OSError, TimeoutError, aio_pika.exceptions.AMQPError) as exc:
            errors.append(f"{redacted(addresses[start])}: {exc!r}")
            await connection.close()
            continue
        if start:
            log.warning("bus.connected_elsewhere", address=connection.address,
                        unreachable=errors)
        return connection
    raise ConnectionError("; ".join(errors))
