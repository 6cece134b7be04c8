"""Bus URLs: one broker, the nodes of a cluster (a list or comma-separated), or embedded."""

from __future__ import annotations

import pytest

from events.amqp import AmqpBus
from events.connect import broker_endpoints, broker_urls, bus_from_url
from events.errors import ConfigError
from events.memory import MemoryBus


def test_several_addresses_as_a_list_or_comma_separated() -> None:
    urls = ["amqp://u:p@rmq1:5672/cairn", "amqp://u:p@rmq2/cairn", "amqps://u:p@rmq3/cairn"]
    assert broker_urls(urls) == urls
    assert broker_urls(" , ".join(urls)) == urls
    assert broker_endpoints(urls) == [("rmq1", 5672), ("rmq2", 5672), ("rmq3", 5671)]
    bus = bus_from_url(",".join(urls))
    assert isinstance(bus, AmqpBus) and bus.urls == urls


def test_the_embedded_broker_is_one_url_alone() -> None:
    assert isinstance(bus_from_url("memory://"), MemoryBus)
    assert broker_endpoints("memory://") == []
    with pytest.raises(ConfigError, match="cannot be one of several"):
        broker_urls("memory://,amqp://u:p@rmq1/")


@pytest.mark.parametrize(("url", "message"), [
    ("", "empty"),
    ("amqp://u:p@rmq1/,http://rmq2/", "scheme must be"),
    ("amqp:///cairn", "no broker host"),
])
def test_bad_bus_urls_are_refused_clearly(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        broker_urls(url)


def test_a_password_never_appears_in_the_error() -> None:
    with pytest.raises(ConfigError) as raised:
        broker_urls("amqp://u:s3cret@rmq1/,ftp://u:s3cret@rmq2/")
    assert "s3cret" not in str(raised.value)
