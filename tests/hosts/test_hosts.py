"""Test hosts are separate machines as far as the network goes: their own loopback, only
the connections a firewall allows, and a link that can be cut and restored."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.hosts import Endpoint, Host, Network

pytestmark = [pytest.mark.hosts]

SERVE = ("import http.server, sys; http.server.ThreadingHTTPServer((sys.argv[1], "
         "int(sys.argv[2])), http.server.SimpleHTTPRequestHandler).serve_forever()")


def _serve(host: Host, port: int, tmp_path: Path) -> None:
    host.spawn(f"http-{port}", [sys.executable, "-c", SERVE, host.address, str(port)],
               log=tmp_path / f"{host.name}-{port}.log", cwd=tmp_path)
    deadline = time.monotonic() + 15
    while not _reaches(None, host.address, port):
        assert time.monotonic() < deadline, f"the server on {host.name}:{port} did not start"
        time.sleep(0.05)


def _reaches(host: Host | None, address: str, port: int) -> bool:
    """Whether a TCP connection from ``host`` (None: the test itself) gets through."""
    probe = [sys.executable, "-c", "import socket, sys; socket.create_connection("
             "(sys.argv[1], int(sys.argv[2])), timeout=2).close()", address, str(port)]
    if host is not None:
        probe = ["ip", "netns", "exec", host.netns, *probe]
    return subprocess.run(probe, capture_output=True, timeout=30).returncode == 0


def test_a_builder_host_reaches_only_what_a_builder_may(host_network: Network,
                                                         tmp_path: Path) -> None:
    control = host_network.add_host("control")
    broker = host_network.add_host("broker")
    builder = host_network.add_host("builder")
    for host, port in ((control, 8090), (control, 8080), (broker, 5672)):
        _serve(host, port, tmp_path)
    _serve(builder, 8070, tmp_path)
    assert len({control.address, broker.address, builder.address}) == 3

    host_network.firewall(builder, reach=[Endpoint(broker.address, 5672),
                                          Endpoint(control.address, 8090)],
                          serve=[(control.address, 8070)])
    assert _reaches(builder, broker.address, 5672)
    assert _reaches(builder, control.address, 8090)  # vessel's repository
    assert not _reaches(builder, control.address, 8080)  # summit's API: not a builder's
    # The machine's own loopback services (the shared test broker) are not the host's.
    assert not _reaches(builder, "127.0.0.1", 5672)
    assert not _reaches(builder, host_network.gateway, 22)
    assert _reaches(control, builder.address, 8070)  # vessel pulls artefacts
    assert not _reaches(broker, builder.address, 8070)
    assert _reaches(None, builder.address, 8070)  # the test sees everything


def test_a_cut_host_is_unreachable_until_its_link_is_restored(host_network: Network,
                                                               tmp_path: Path) -> None:
    control = host_network.add_host("control")
    builder = host_network.add_host("builder")
    _serve(control, 8090, tmp_path)
    _serve(builder, 8070, tmp_path)
    assert _reaches(builder, control.address, 8090)

    builder.cut()
    assert builder.is_cut
    assert not _reaches(builder, control.address, 8090)
    assert not _reaches(control, builder.address, 8070)
    assert not _reaches(None, builder.address, 8070)

    builder.restore()
    assert not builder.is_cut
    deadline = time.monotonic() + 10
    while not _reaches(builder, control.address, 8090):
        assert time.monotonic() < deadline, "the restored link carries nothing"
        time.sleep(0.1)


def test_closing_the_network_removes_its_namespaces_links_and_processes(
        host_network: Network, tmp_path: Path) -> None:
    network = host_network
    host = network.add_host("control")
    _serve(host, 8090, tmp_path)
    pid = host.children[0].pid
    network.close()
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert host.netns not in namespaces
    assert network.bridge not in links and host.link not in links
    assert not Path(f"/proc/{pid}").exists()
