"""Which address a service binds and names in URLs when the farm spans hosts."""

from __future__ import annotations

import pytest

from daemon.runtime.address import (
    AUTO,
    address_towards,
    advertised_host,
    http_url,
    listen_host,
    loopback_across_hosts,
)

LOCAL_BUS = "amqp://guest:guest@127.0.0.1:5672/"


def test_auto_listens_on_loopback_when_the_broker_is_local_or_embedded() -> None:
    assert listen_host(AUTO, LOCAL_BUS) == "127.0.0.1"
    assert listen_host(AUTO, "memory://") == "127.0.0.1"


def test_auto_listens_on_the_address_that_routes_to_a_remote_broker() -> None:
    # No packet is sent: the kernel only picks the route (and so the source address).
    remote = address_towards("192.0.2.1", 5672)
    assert remote != "127.0.0.1"
    assert listen_host(AUTO, ["amqp://u:p@192.0.2.1/v", "amqp://u:p@192.0.2.2/v"]) == remote


def test_an_explicit_host_is_kept_and_a_wildcard_is_never_advertised() -> None:
    assert listen_host("10.1.2.3", LOCAL_BUS) == "10.1.2.3"
    assert advertised_host("10.1.2.3", LOCAL_BUS) == "10.1.2.3"
    assert advertised_host("0.0.0.0", LOCAL_BUS) == "127.0.0.1"
    assert advertised_host("::", "amqp://u:p@192.0.2.1/") == address_towards("192.0.2.1", 5672)


@pytest.mark.parametrize(("url", "bus", "expected"), [
    ("http://127.0.0.1:8090", "amqp://u:p@192.0.2.1/", True),
    ("http://localhost:8090", "amqp://u:p@192.0.2.1/", True),
    ("http://127.0.0.1:8090", LOCAL_BUS, False),
    ("http://127.0.0.1:8090", "memory://", False),
    ("http://10.0.0.5:8090", "amqp://u:p@192.0.2.1/", False),
])
def test_a_loopback_url_handed_across_hosts_is_recognised(url: str, bus: str,
                                                          expected: bool) -> None:
    assert loopback_across_hosts(url, bus) is expected


def test_http_urls_bracket_ipv6() -> None:
    assert http_url("10.0.0.1", 80) == "http://10.0.0.1:80"
    assert http_url("fd00::1", 8090) == "http://[fd00::1]:8090"
