"""The telemetry contract (events/telemetry.py), run against the in-process telemetry and
against Mosquitto: what summit's dashboard and the builders rely on.

Connection behaviour — a last will when a client vanishes, state restated after a broker
restart, ``check`` following the connection — belongs to MQTT alone (the in-process
telemetry lives and dies with its process): ``test_mqtt_only.py``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import pytest

from events.names import builder_status_topic, task_log_topic
from events.telemetry import MqttTelemetry, topic_matches
from tests.contract.telemetry_support import (
    MemoryTelemetryTransport,
    MqttTelemetryTransport,
    TelemetryTransport,
    check_result,
)


@pytest.fixture(params=["memory", pytest.param("mqtt", marks=pytest.mark.mqtt)])
async def telemetry_factory(request: pytest.FixtureRequest) -> AsyncIterator[TelemetryTransport]:
    transport: TelemetryTransport = (MemoryTelemetryTransport() if request.param == "memory"
                                     else MqttTelemetryTransport())
    try:
        yield transport
    finally:
        await transport.aclose()


def _builder() -> str:
    return f"b-{uuid.uuid4().hex[:8]}"


def _task() -> int:
    return 10**9 + uuid.uuid4().int % 10**9


def _status(builder: str, state: str) -> bytes:
    return json.dumps({"builder": builder, "state": state}).encode()


async def test_retained_presence_reaches_watchers_that_come_later(
    telemetry_factory: TelemetryTransport,
) -> None:
    publisher = await telemetry_factory.open()
    watcher = await telemetry_factory.open()
    builder = _builder()
    topic = builder_status_topic(builder)
    publisher.publish(topic, _status(builder, "online"), retain=True)
    first = telemetry_factory.watch(watcher, topic)
    await first.until(lambda: first.payloads(topic) == [_status(builder, "online")],
                      "the retained status")

    publisher.publish(topic, _status(builder, "building"), retain=True)
    await first.until(lambda: len(first.payloads(topic)) == 2, "the new status")
    late = telemetry_factory.watch(watcher, topic)
    await late.until(lambda: bool(late.payloads(topic)), "the retained status, late")
    assert first.payloads(topic) == [_status(builder, "online"), _status(builder, "building")]
    assert late.payloads(topic) == [_status(builder, "building")]  # the latest one only


async def test_an_empty_retained_message_clears_presence(
    telemetry_factory: TelemetryTransport,
) -> None:
    publisher = await telemetry_factory.open()
    builder = _builder()
    topic = builder_status_topic(builder)
    publisher.publish(topic, _status(builder, "online"), retain=True)
    publisher.publish(topic, b"", retain=True)
    after = telemetry_factory.watch(await telemetry_factory.open(), topic)
    await after.subscribed(publisher, topic)
    publisher.publish(topic, _status(builder, "again"))
    await after.until(lambda: bool(after.payloads(topic)), "the status published after")
    # Nothing retained came before what was published after the watcher subscribed.
    assert after.payloads(topic) == [_status(builder, "again")]


async def test_log_lines_arrive_in_order_and_complete(
    telemetry_factory: TelemetryTransport,
) -> None:
    publisher = await telemetry_factory.open()
    task = _task()
    topic = task_log_topic(task)
    watch = telemetry_factory.watch(await telemetry_factory.open(), "cairn/tasks/+/log")
    await watch.subscribed(publisher, topic)
    lines = [f"line {n}: {'x' * (n % 50)}".encode() for n in range(300)]
    for line in lines:
        publisher.publish(topic, line)
    await watch.until(lambda: len(watch.payloads(topic)) >= len(lines), "every log line")
    assert watch.payloads(topic) == lines


async def test_a_watcher_gets_only_the_topics_its_pattern_matches(
    telemetry_factory: TelemetryTransport,
) -> None:
    publisher = await telemetry_factory.open()
    mine, other = _builder(), _builder()
    pattern = f"cairn/builders/{mine}/#"
    watch = telemetry_factory.watch(await telemetry_factory.open(), pattern)
    await watch.subscribed(publisher, builder_status_topic(mine))
    publisher.publish(builder_status_topic(other), _status(other, "online"))
    publisher.publish(task_log_topic(_task()), b"a log line")
    publisher.publish(builder_status_topic(mine), _status(mine, "online"))
    await watch.until(lambda: bool(watch.payloads(builder_status_topic(mine))), "my status")
    assert {m.topic for m in watch.messages} == {builder_status_topic(mine)}
    assert all(topic_matches(pattern, m.topic) for m in watch.messages)


async def test_check_passes_while_telemetry_can_publish(
    telemetry_factory: TelemetryTransport,
) -> None:
    telemetry = await telemetry_factory.open()
    assert await check_result(telemetry) == "ok"


async def test_publish_never_blocks_or_raises_without_a_broker() -> None:
    """A build must not wait for telemetry: with nothing listening, publish returns."""
    lonely = MqttTelemetry("mqtt://127.0.0.1:9", reconnect_delay=0.05)
    await lonely.start()
    try:
        for n in range(100):
            lonely.publish(task_log_topic(1), b"line %d" % n)
        said = await check_result(lonely)
        assert said.startswith("not connected to the MQTT broker at 127.0.0.1:9 for "), said
    finally:
        await lonely.stop()
