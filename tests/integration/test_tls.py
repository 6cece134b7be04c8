"""AMQP and MQTT over mutual TLS, on private brokers that listen for TLS only, with a CA made
by the test: a client with its certificate works; a client without one is refused; a plain
connection is refused."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import aiomqtt
import pytest

from events.amqp import AmqpBus
from events.bus import Subscription
from events.errors import BusError
from events.names import binding
from events.telemetry import MqttTelemetry
from tests.contract.support import Recorder, subject, task_ready
from tests.support.fixtures import unavailable
from tests.support.mosquitto import MosquittoBroker, MqttTls, mosquitto_binary
from tests.support.ports import free_port
from tests.support.rabbitmq import Epmd, NodeTls, RabbitNode, new_cookie
from tests.support.tls import CertificateAuthority, Issued

pytestmark = [pytest.mark.rabbitmq, pytest.mark.mqtt]


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return CertificateAuthority.create(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def client_cert(ca: CertificateAuthority, tmp_path_factory: pytest.TempPathFactory) -> Issued:
    return ca.issue("summit", tmp_path_factory.mktemp("client"), client=True)


@pytest.fixture(scope="module")
def tls_rabbit(ca: CertificateAuthority, private_epmd: Epmd,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitNode]:
    directory = tmp_path_factory.mktemp("rmq-tls")
    server = ca.issue("127.0.0.1", directory / "tls")
    node = RabbitNode(f"cairn-t{secrets.token_hex(3)}", directory, private_epmd, new_cookie(),
                      tls=NodeTls(free_port(), server.certfile, server.keyfile, ca.certfile),
                      plain=False)
    node.start()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="module")
def tls_mosquitto(ca: CertificateAuthority,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoBroker]:
    if mosquitto_binary() is None:
        unavailable("mosquitto is not installed")
    directory = tmp_path_factory.mktemp("mqtt-tls")
    server = ca.issue("127.0.0.1", directory / "tls")
    broker = MosquittoBroker(directory, tls=MqttTls(free_port(), server.certfile,
                                                    server.keyfile, ca.certfile), plain=False)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def _query(ca: CertificateAuthority, cert: Issued | None) -> str:
    files = {"cafile": str(ca.certfile)}
    if cert is not None:
        files |= {"certfile": str(cert.certfile), "keyfile": str(cert.keyfile)}
    return urlencode(files)


async def test_amqp_over_mutual_tls_carries_events(tls_rabbit: RabbitNode,
                                                   ca: CertificateAuthority,
                                                   client_cert: Issued) -> None:
    url = f"{tls_rabbit.tls_url()}?{_query(ca, client_cert)}"
    bus = AmqpBus(url, name="tls-test")
    await bus.connect()
    try:
        s = subject()
        recorder = Recorder()
        queue = f"test.tls.{secrets.token_hex(4)}"
        await bus.subscribe(Subscription(queue, (binding("task-ready", s),)), recorder)
        event = task_ready(s)
        await bus.publish(event)
        await recorder.wait_handled(1)
        assert recorder.ids == [event.id]
    finally:
        await bus.close(timeout=1)


async def test_amqp_client_without_a_certificate_or_without_tls_is_refused(
        tls_rabbit: RabbitNode, ca: CertificateAuthority) -> None:
    no_cert = AmqpBus(f"{tls_rabbit.tls_url()}?{_query(ca, None)}", name="no-cert")
    with pytest.raises(BusError, match="cannot connect"):
        await no_cert.connect()
    plain_on_tls_port = AmqpBus(tls_rabbit.tls_url().replace("amqps://", "amqp://"),
                                name="plain")
    with pytest.raises(BusError, match="cannot connect"):
        await plain_on_tls_port.connect()
    plain_port = AmqpBus(tls_rabbit.url(), name="plain-port")
    with pytest.raises(BusError, match="cannot connect"):
        await plain_port.connect()


async def test_mqtt_over_mutual_tls_carries_telemetry(tls_mosquitto: MosquittoBroker,
                                                      ca: CertificateAuthority,
                                                      client_cert: Issued) -> None:
    url = f"{tls_mosquitto.tls_url}?{_query(ca, client_cert)}"
    publisher = MqttTelemetry(url, client_id="tls-builder")
    watcher = MqttTelemetry(url)
    await publisher.start()
    try:
        async def first() -> bytes:
            async for message in watcher.subscribe("cairn/tasks/+/log"):
                return message.payload
            raise AssertionError("the subscription ended")

        received = asyncio.create_task(first())
        await asyncio.sleep(0.5)
        publisher.publish("cairn/tasks/7/log", b"over tls")
        assert await asyncio.wait_for(received, 15) == b"over tls"
    finally:
        await publisher.stop()


async def test_mqtt_client_without_a_certificate_or_without_tls_is_refused(
        tls_mosquitto: MosquittoBroker, ca: CertificateAuthority) -> None:
    assert tls_mosquitto.tls is not None
    no_cert = MqttTelemetry(f"{tls_mosquitto.tls_url}?{_query(ca, None)}").address
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client(no_cert.host, no_cert.port, tls_context=no_cert.tls_context(),
                                  timeout=5):
            pass
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client(tls_mosquitto.host, tls_mosquitto.tls.port, timeout=5):
            pass


def test_tls_files_are_read_from_the_mqtt_url(tmp_path: Path) -> None:
    address = MqttTelemetry("mqtts://u:p%40ss@mq1?cafile=/ca.pem&certfile=/c.pem&keyfile=/k",
                            client_id="x").address
    assert (address.host, address.port, address.tls) == ("mq1", 8883, True)
    assert (address.cafile, address.certfile, address.keyfile) == ("/ca.pem", "/c.pem", "/k")
    assert address.password == "p@ss"
