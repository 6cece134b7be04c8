"""The private brokers of tests/support are real, separate brokers: what a test does to one
(kill -9 of its Erlang VM, a restart) reaches neither the shared broker nor another test."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import aio_pika
import aiomqtt
import pytest

from tests.conftest import RABBITMQ_PORT
from tests.support.mosquitto import MosquittoBroker
from tests.support.process import Child, sweep_stale_children
from tests.support.rabbitmq import RabbitNode

pytestmark = [pytest.mark.rabbitmq]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def _roundtrip(url: str, queue_name: str) -> bytes:
    connection = await aio_pika.connect(url, timeout=10)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, exclusive=True)
        await channel.default_exchange.publish(aio_pika.Message(b"hello"), queue.name)
        message = await queue.get(no_ack=True, timeout=10)
        return message.body


async def test_a_private_node_is_its_own_broker_and_dies_by_kill_9(
        private_rabbit: RabbitNode) -> None:
    assert private_rabbit.port != RABBITMQ_PORT
    assert private_rabbit.nodename != "rabbit@localhost"
    assert await _roundtrip(private_rabbit.url(), "support.before") == b"hello"

    first_vm = private_rabbit.pid
    private_rabbit.kill()
    assert not _alive(first_vm)
    with pytest.raises(OSError):
        await aio_pika.connect(private_rabbit.url(), timeout=2)

    await asyncio.to_thread(private_rabbit.start)
    assert private_rabbit.pid != first_vm and _alive(private_rabbit.pid)
    assert await _roundtrip(private_rabbit.url(), "support.after") == b"hello"


@pytest.mark.mqtt
async def test_private_mosquitto_carries_messages_and_stops_by_its_pid(
        private_mosquitto: MosquittoBroker) -> None:
    async with aiomqtt.Client(private_mosquitto.host, private_mosquitto.port) as client:
        await client.subscribe("support/#", qos=1)
        await client.publish("support/hello", b"hi", qos=1)
        async for message in client.messages:
            assert message.payload == b"hi"
            break
    pid = private_mosquitto.pid
    private_mosquitto.stop()
    assert not _alive(pid)


def test_children_of_a_run_that_died_without_teardown_are_swept(tmp_path: Path) -> None:
    """A run ended by pytest-timeout or SIGKILL leaves its brokers in sessions of their own;
    the next run kills them (and only them: the owner must be gone, the pid unchanged)."""
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    orphan = Child("orphan", ["sleep", "300"], log=tmp_path / "orphan.log").start()
    kept = Child("kept", ["sleep", "300"], log=tmp_path / "kept.log").start()
    try:
        record = json.loads(orphan._record_path.read_text())
        orphan._record_path.write_text(json.dumps({**record, "owner": owner.pid}))
        owner.kill()
        owner.wait()
        assert sweep_stale_children() == 1
        assert orphan.popen is not None and orphan.popen.wait(timeout=10) == -signal.SIGKILL
        assert kept.running
    finally:
        kept.stop()
        orphan.stop()
    assert not kept._record_path.exists() and not orphan._record_path.exists()
