"""The contract suite runs every test against both transports (``bus_factory``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.contract.support import MemoryTransport, RabbitTransport, Transport


@pytest.fixture(params=["memory", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
async def bus_factory(request: pytest.FixtureRequest) -> AsyncIterator[Transport]:
    """The transport under test: ``await bus_factory.open()`` gives a connected bus."""
    transport: Transport
    if request.param == "memory":
        transport = MemoryTransport()
    else:
        transport = RabbitTransport(request.getfixturevalue("rabbitmq_url"))
    try:
        yield transport
    finally:
        await transport.aclose()


@pytest.fixture
async def rabbit(rabbitmq_url: str) -> AsyncIterator[RabbitTransport]:
    """The RabbitMQ transport alone, for the tests only a real broker can run."""
    transport = RabbitTransport(rabbitmq_url)
    try:
        yield transport
    finally:
        await transport.aclose()
