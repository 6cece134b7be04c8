"""Telemetry over real Mosquitto and in process: retained status, live log lines, last will."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator

import pytest

from events.names import builder_status_topic, task_log_topic
from events.telemetry import MemoryTelemetry, Message, MqttTelemetry, Telemetry
from tests.support.mosquitto import MosquittoBroker

MQTT_URL = os.environ.get("CAIRN_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")


async def _collect(source: AsyncIterator[Message], count: int) -> list[Message]:
    seen: list[Message] = []
    async for message in source:
        seen.append(message)
        if len(seen) >= count:
            break
    return seen


async def _roundtrip(publisher: Telemetry, watcher: Telemetry, builder: str) -> None:
    status = builder_status_topic(builder)
    publisher.publish(status, b'{"builder": "%s", "state": "online"}' % builder.encode(),
                      retain=True)
    await asyncio.sleep(0.3)
    # A watcher that arrives later still sees the retained status first.
    collecting = asyncio.create_task(_collect(watcher.subscribe(f"cairn/+/{builder}/#"), 1))
    logs = asyncio.create_task(_collect(watcher.subscribe("cairn/tasks/+/log"), 2))
    await asyncio.sleep(0.3)
    publisher.publish(task_log_topic(4242), b"line one")
    publisher.publish(task_log_topic(4242), b"line two")
    first = await asyncio.wait_for(collecting, 10)
    lines = await asyncio.wait_for(logs, 10)
    assert first[0].topic == status and json.loads(first[0].payload)["state"] == "online"
    assert [m.payload for m in lines] == [b"line one", b"line two"]
    publisher.publish(status, b"", retain=True)  # an empty retained message clears it


async def test_memory_telemetry_retains_and_streams() -> None:
    telemetry = MemoryTelemetry()
    await telemetry.start()
    await _roundtrip(telemetry, telemetry, f"b-{uuid.uuid4().hex[:6]}")
    await telemetry.stop()


@pytest.mark.mqtt
async def test_mqtt_telemetry_retains_and_streams(private_mosquitto: MosquittoBroker) -> None:
    # A private broker: the test reads every task's log topic, which other test runs on the
    # shared Mosquitto write to at the same time.
    builder = f"b-{uuid.uuid4().hex[:6]}"
    publisher = MqttTelemetry(private_mosquitto.url, client_id=builder)
    watcher = MqttTelemetry(private_mosquitto.url)
    await publisher.start()
    try:
        await _roundtrip(publisher, watcher, builder)
    finally:
        await publisher.stop()


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


@pytest.mark.mqtt
async def test_last_will_turns_a_killed_builder_offline() -> None:
    builder = f"b-{uuid.uuid4().hex[:6]}"
    topic = builder_status_topic(builder)
    child = subprocess.Popen([sys.executable, "-c", CHILD, MQTT_URL, topic, builder],
                             stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), 20)
        assert line.strip() == b"up"
        watcher = MqttTelemetry(MQTT_URL)
        states: list[str] = []

        async def watch() -> None:
            async for message in watcher.subscribe(topic):
                states.append(json.loads(message.payload)["state"])
                if states[-1] == "offline":
                    return

        watching = asyncio.create_task(watch())
        await asyncio.sleep(0.5)
        assert states == ["online"]
        child.send_signal(signal.SIGKILL)
        await asyncio.wait_for(watching, 30)  # keepalive 10 s: the broker notices in ~15 s
        assert states[-1] == "offline"
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-t", topic, "-r", "-n"],
                       check=True, timeout=10)
    finally:
        child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
