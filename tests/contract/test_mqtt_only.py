"""What only a real MQTT broker can show: a builder that vanishes is announced offline by
its last will, and a client whose broker restarts reports it at once, reconnects by itself
and states its retained presence again (the restarted broker kept nothing)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator

import pytest

from events.names import builder_status_topic, task_log_topic
from events.telemetry import Message
from tests.contract.telemetry_support import (
    MQTT_URL,
    MqttTelemetryTransport,
    until_checked,
)
from tests.support.mosquitto import MosquittoBroker

pytestmark = pytest.mark.mqtt


@pytest.fixture
async def shared_mqtt() -> AsyncIterator[MqttTelemetryTransport]:
    """Clients of the shared Mosquitto (unique topics; nothing here stops that broker)."""
    transport = MqttTelemetryTransport(MQTT_URL)
    try:
        yield transport
    finally:
        await transport.aclose()


@pytest.fixture
async def private_mqtt(private_mosquitto: MosquittoBroker
                       ) -> AsyncIterator[MqttTelemetryTransport]:
    """Clients of this test's own Mosquitto, which the test may kill and start again."""
    transport = MqttTelemetryTransport(private_mosquitto.url)
    try:
        yield transport
    finally:
        await transport.aclose()


CHILD = """
import asyncio, sys
from events.telemetry import MqttTelemetry, Message
async def main():
    topic = sys.argv[2]
    who = sys.argv[3].encode()
    t = MqttTelemetry(sys.argv[1], client_id=sys.argv[3],
                      will=Message(topic, b'{"builder": "%s", "state": "offline"}' % who,
                                   retain=True))
    await t.start()
    t.publish(topic, b'{"builder": "%s", "state": "online"}' % who, retain=True)
    await t.connected.wait()
    await asyncio.sleep(0.3)
    print("up", flush=True)
    await asyncio.sleep(3600)
asyncio.run(main())
"""


async def test_last_will_turns_a_killed_builder_offline(
    shared_mqtt: MqttTelemetryTransport,
) -> None:
    builder = f"b-{uuid.uuid4().hex[:6]}"
    topic = builder_status_topic(builder)
    child = subprocess.Popen([sys.executable, "-c", CHILD, MQTT_URL, topic, builder],
                             stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), 20)
        assert line.strip() == b"up"
        watch = shared_mqtt.watch(await shared_mqtt.open(), topic)

        def states() -> list[str]:
            return [json.loads(p)["state"] for p in watch.payloads(topic)]

        await watch.until(lambda: states() == ["online"], "the retained online status")
        child.send_signal(signal.SIGKILL)
        await watch.until(lambda: states()[-1:] == ["offline"], "the last will", within=30)
        assert states() == ["online", "offline"]
    finally:
        child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
        publisher = await shared_mqtt.open()
        publisher.publish(topic, b"", retain=True)  # leave nothing retained behind


async def test_a_clean_stop_publishes_no_last_will(shared_mqtt: MqttTelemetryTransport) -> None:
    builder = f"b-{uuid.uuid4().hex[:6]}"
    topic = builder_status_topic(builder)
    leaving = await shared_mqtt.open(will=Message(topic, b"offline", retain=True))
    leaving.publish(topic, b"online", retain=True)
    watcher = await shared_mqtt.open()
    watch = shared_mqtt.watch(watcher, topic)
    await watch.until(lambda: watch.payloads(topic) == [b"online"], "the online status")
    await leaving.stop()
    shared_mqtt.opened.remove(leaving)
    watcher.publish(topic, b"marker")  # the will, had it been sent, would come before this
    await watch.until(lambda: watch.payloads(topic)[-1:] == [b"marker"], "the marker")
    assert watch.payloads(topic) == [b"online", b"marker"]
    watcher.publish(topic, b"", retain=True)


async def test_a_broker_restart_is_reported_at_once_and_presence_is_stated_again(
    private_mosquitto: MosquittoBroker, private_mqtt: MqttTelemetryTransport,
) -> None:
    builder = f"b-{uuid.uuid4().hex[:6]}"
    status, log = builder_status_topic(builder), task_log_topic(7)
    publisher = await private_mqtt.open()
    publisher.publish(status, b"online", retain=True)
    watch = private_mqtt.watch(await private_mqtt.open(), "cairn/#")
    await watch.until(lambda: watch.payloads(status) == [b"online"], "the status")

    private_mosquitto.kill()
    said = await until_checked(publisher, healthy=False)
    assert said.startswith("not connected to the MQTT broker at "
                           f"127.0.0.1:{private_mosquitto.port} for "), said
    assert said.endswith("; reconnecting"), said
    for n in range(3):
        publisher.publish(log, b"while away %d" % n)  # queued, never raises

    await asyncio.to_thread(private_mosquitto.start)
    await until_checked(publisher, healthy=True, within=20)
    # The restarted broker kept nothing: a client that comes now sees the status only
    # because the publisher stated it again when it reconnected.
    fresh = private_mqtt.watch(await private_mqtt.open(), status)
    await fresh.until(lambda: fresh.payloads(status) == [b"online"], "the restated status")
    # The watcher that lived through the restart resubscribed by itself.
    await watch.subscribed(publisher, log)
    lines = [b"after %d" % n for n in range(20)]
    for line in lines:
        publisher.publish(log, line)
    await watch.until(lambda: watch.payloads(log)[-len(lines):] == lines, "lines after")
