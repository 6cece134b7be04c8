"""pytest fixtures for private brokers (loaded for every test by ``tests/conftest.py``).

- ``private_rabbit`` — a private RabbitMQ node (:class:`RabbitNode`), one per session. A test
  may stop, kill (``node.kill()`` is ``kill -9`` of its Erlang VM) and start it again; the
  next test that asks for it gets it running. Use ``node.url()`` (guest/guest, vhost ``/``)
  and unique queue names, or ``node.add_vhost(name)``.
- ``fresh_rabbit`` — a node of the test's own, gone after the test (for a test that needs a
  broker no other test has touched, or breaks it beyond a restart).
- ``private_rabbit_cluster`` — a three-node cluster (:class:`RabbitCluster`), one per
  session, every node running again before each test that asks for it.
- ``private_mosquitto`` — a private Mosquitto (:class:`MosquittoBroker`) for one test.
- ``host_network`` — a bridge for the test's own hosts (:class:`Network`): ``add_host(name)``
  makes a network namespace with an address of its own; ``firewall``, ``Host.cut`` and
  ``Host.restore`` narrow and break its links. Everything is removed after the test (needs
  root and nftables). :class:`tests.support.hostfarm.HostFarm` runs a whole farm on them.

Where RabbitMQ or Mosquitto is not installed the fixtures skip, except in CI, where they
fail: the tests that need them must really run there.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.hosts import HostsUnavailable, Network, hosts_unavailable
from tests.support.mosquitto import MosquittoBroker, mosquitto_binary
from tests.support.ports import free_port
from tests.support.rabbitmq import (
    BrokerStartError,
    Epmd,
    RabbitCluster,
    RabbitNode,
    erlang_available,
    new_cookie,
)


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(what: str) -> None:
    if _in_ci():
        pytest.fail(f"{what} (required in CI)", pytrace=False)
    pytest.skip(what)


def _require_rabbitmq() -> None:
    reason = erlang_available()
    if reason is not None:
        unavailable(reason)


@pytest.fixture(scope="session")
def private_epmd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Epmd]:
    """An epmd on a port of its own for this session's private nodes on loopback."""
    _require_rabbitmq()
    epmd = Epmd(tmp_path_factory.mktemp("epmd"), free_port()).start()
    try:
        yield epmd
    finally:
        epmd.stop()


def _short_dir(tmp_path_factory: pytest.TempPathFactory, label: str) -> Path:
    # AF_UNIX paths (the node's notify socket) are limited to 107 bytes: keep them short.
    return tmp_path_factory.mktemp(label, numbered=True)


@pytest.fixture(scope="session")
def _session_rabbit(tmp_path_factory: pytest.TempPathFactory,
                    private_epmd: Epmd) -> Iterator[RabbitNode]:
    node = RabbitNode(f"cairn-p{secrets.token_hex(3)}", _short_dir(tmp_path_factory, "rmq"),
                      private_epmd, new_cookie())
    try:
        node.start()
    except BrokerStartError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture
def private_rabbit(_session_rabbit: RabbitNode) -> RabbitNode:
    """The session's private node, running (started again if a test before stopped it)."""
    if not _session_rabbit.running:
        _session_rabbit.start()
    return _session_rabbit


@pytest.fixture
def fresh_rabbit(tmp_path_factory: pytest.TempPathFactory,
                 private_epmd: Epmd) -> Iterator[RabbitNode]:
    """A private node for this test alone."""
    node = RabbitNode(f"cairn-f{secrets.token_hex(3)}", _short_dir(tmp_path_factory, "rmq"),
                      private_epmd, new_cookie())
    try:
        node.start()
    except BrokerStartError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="session")
def _session_cluster(tmp_path_factory: pytest.TempPathFactory,
                     private_epmd: Epmd) -> Iterator[RabbitCluster]:
    cluster = RabbitCluster.on_loopback(_short_dir(tmp_path_factory, "cluster"), private_epmd)
    try:
        try:
            cluster.start()
        except BrokerStartError as exc:
            pytest.fail(str(exc), pytrace=False)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def private_rabbit_cluster(_session_cluster: RabbitCluster) -> RabbitCluster:
    """The session's three-node cluster with every node running and joined."""
    stopped = [node for node in _session_cluster.nodes if not node.running]
    for node in stopped:
        node.start()
    if stopped:
        _session_cluster.wait_formed()
    return _session_cluster


@pytest.fixture
def private_mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoBroker]:
    """A Mosquitto of this test's own on a free port (anonymous clients allowed)."""
    if mosquitto_binary() is None:
        unavailable("mosquitto is not installed (apt-get install mosquitto)")
    broker = MosquittoBroker(_short_dir(tmp_path_factory, "mqtt"))
    try:
        broker.start()
    except BrokerStartError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def host_network() -> Iterator[Network]:
    """A bridge of this test's own; hosts, their processes and links go with it."""
    reason = hosts_unavailable()
    if reason is not None:
        unavailable(f"test hosts cannot be made: {reason}")
    try:
        network = Network.create()
    except HostsUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield network
    finally:
        network.close()
