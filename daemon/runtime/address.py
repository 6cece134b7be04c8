"""Which address a service listens on and tells other hosts, when a farm spans machines.

A builder's artefact server must be reachable by vessel, and vessel's repository by the
builders; on one machine that is ``127.0.0.1``, across machines it is not. ``listen_host``
empty (the default of the services other hosts connect to) means: the address this host uses
to reach the broker — loopback when the broker is local, the host's address on the farm's
network when it is elsewhere. A wildcard (``0.0.0.0``, ``::``) listens everywhere but is
never put in a URL: the URL names the address toward the broker instead.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

from events.connect import broker_endpoints

AUTO = ""
WILDCARDS = frozenset({"0.0.0.0", "::", "*"})  # noqa: S104 - names, not a bind
LOOPBACK = "127.0.0.1"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def address_towards(host: str, port: int) -> str:
    """The local address the kernel would use to reach ``host:port`` (no packet is sent:
    connecting a UDP socket only picks the route)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except OSError:
        return LOOPBACK
    for family, kind, proto, _, target in infos:
        with socket.socket(family, kind, proto) as probe:
            try:
                probe.connect(target)
            except OSError:
                continue
            return str(probe.getsockname()[0])
    return LOOPBACK


def reachable_host(bus_url: str | Sequence[str]) -> str:
    """The address other hosts of the farm reach this one at: toward the first broker."""
    endpoints = broker_endpoints(bus_url)
    if not endpoints:
        return LOOPBACK  # the embedded broker: everything is in this process
    return address_towards(*endpoints[0])


def listen_host(configured: str, bus_url: str | Sequence[str]) -> str:
    """What to bind: the configured host, or for :data:`AUTO` the address toward the broker."""
    return reachable_host(bus_url) if configured == AUTO else configured


def advertised_host(bound: str, bus_url: str | Sequence[str]) -> str:
    """What to put in URLs for a server bound to ``bound``: never a wildcard."""
    return reachable_host(bus_url) if bound in WILDCARDS or bound == AUTO else bound


def loopback_across_hosts(url: str, bus_url: str | Sequence[str]) -> bool:
    """True when ``url`` points at this machine's loopback although the broker (and so,
    presumably, the services that will be handed ``url``) is on another machine."""
    host = urlsplit(url).hostname or ""
    endpoints = broker_endpoints(bus_url)
    return is_loopback(host) and any(not is_loopback(h) for h, _ in endpoints)


def http_url(host: str, port: int) -> str:
    """``http://host:port`` with an IPv6 address in brackets."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"
