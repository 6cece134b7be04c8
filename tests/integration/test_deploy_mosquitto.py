"""deploy/mosquitto: the shipped config and a generated ACL, in a private Mosquitto.

The test runs its own broker (never the system one on 1883) with deploy/mosquitto/cairn.conf
adapted only in paths and port, a password file made with ``mosquitto_passwd``, and the ACL
``cairn deploy mosquitto-acl`` writes. MQTT 3.1.1 drops an unauthorised PUBLISH silently, so
"refused" is shown by a subscriber that sees a later sentinel message but not the refused one.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import pytest

from daemon.deploy.mosquitto import render_acl
from events.names import builder_status_topic, task_log_topic
from events.telemetry import Message, MqttTelemetry

pytestmark = pytest.mark.mqtt

CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto" / "cairn.conf"
BUILDERS = ("b1", "b2")
PASSWORDS = {"summit": "summit-pw", "b1": "b1-pw", "b2": "b2-pw", "vessel": "vessel-pw"}


@dataclass(frozen=True)
class Broker:
    port: int

    def client(self, user: str | None, password: str | None = None) -> aiomqtt.Client:
        return aiomqtt.Client("127.0.0.1", self.port, username=user,
                              password=password if password is not None else
                              PASSWORDS.get(user or ""), timeout=10)

    def url(self, user: str) -> str:
        return f"mqtt://{user}:{PASSWORDS[user]}@127.0.0.1:{self.port}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def adapt(config: str, directory: Path, port: int) -> str:
    """The shipped config with temporary paths and a free port; every other line as is."""
    replacements = {
        "password_file": f"password_file {directory / 'passwd'}",
        "acl_file": f"acl_file {directory / 'acl'}",
        "persistence_location": f"persistence_location {directory}/",
        "listener": f"listener {port} 127.0.0.1",
        "log_dest": "log_dest stderr",
    }
    lines = []
    for line in config.splitlines():
        key = line.split(" ", 1)[0]
        lines.append(replacements.get(key, line))
    if os.geteuid() == 0:
        # Started as root, mosquitto switches to the "mosquitto" user, which cannot read
        # pytest's private temporary directory: stay the user that made the files.
        lines.append("user root")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(mosquitto).exists() or shutil.which("mosquitto_passwd") is None:
        pytest.skip("mosquitto and mosquitto_passwd are not installed")
    directory = tmp_path_factory.mktemp("mosquitto")
    for user, password in PASSWORDS.items():
        create = ["-c"] if user == "summit" else []
        subprocess.run(["mosquitto_passwd", *create, "-b", str(directory / "passwd"), user,
                        password], check=True, capture_output=True, timeout=30)
    (directory / "acl").write_text(render_acl(BUILDERS))
    port = _free_port()
    (directory / "cairn.conf").write_text(adapt(CONFIG.read_text(), directory, port))
    log = (directory / "mosquitto.log").open("w")
    process = subprocess.Popen([mosquitto, "-c", str(directory / "cairn.conf")],
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("mosquitto did not start: "
                                + (directory / "mosquitto.log").read_text())
                time.sleep(0.05)
        yield Broker(port)
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


class Watcher:
    """Summit's view: everything under cairn/#, in arrival order."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, bytes]] = []
        self._changed = asyncio.Event()

    async def run(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload
            assert isinstance(payload, bytes)
            self.seen.append((str(message.topic), payload))
            self._changed.set()

    async def until(self, topic: str, payload: bytes) -> None:
        async def wait() -> None:
            while (topic, payload) not in self.seen:
                self._changed.clear()
                await self._changed.wait()
        await asyncio.wait_for(wait(), 10)


@pytest.fixture
async def summit(broker: Broker) -> AsyncIterator[tuple[aiomqtt.Client, Watcher]]:
    watcher = Watcher()
    async with broker.client("summit") as client:
        await client.subscribe("cairn/#", qos=1)
        task = asyncio.create_task(watcher.run(client))
        try:
            yield client, watcher
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_builder_writes_its_status_and_logs_with_the_cairn_client(
        broker: Broker, summit: tuple[aiomqtt.Client, Watcher]) -> None:
    _, watcher = summit
    status = builder_status_topic("b1")
    telemetry = MqttTelemetry(broker.url("b1"), client_id="b1",
                              will=Message(status, b'{"state": "offline"}', retain=True))
    await telemetry.start()
    try:
        telemetry.publish(status, b'{"state": "online"}', retain=True)
        telemetry.publish(task_log_topic(7), b"compiling zlib")
        await watcher.until(status, b'{"state": "online"}')
        await watcher.until(task_log_topic(7), b"compiling zlib")
    finally:
        await telemetry.stop()


async def test_builder_cannot_write_another_builders_status_or_anything_else(
        broker: Broker, summit: tuple[aiomqtt.Client, Watcher]) -> None:
    _, watcher = summit
    refused = [builder_status_topic("b2"), "cairn/summit/control", "cairn/tasks/7/artefacts",
               "cairn/builders/b1/other", "elsewhere/b1"]
    async with broker.client("b1") as b1:
        for topic in refused:
            await b1.publish(topic, b"forged", qos=1)
        await b1.publish(task_log_topic(8), b"sentinel", qos=1)
    await watcher.until(task_log_topic(8), b"sentinel")
    assert [t for t, payload in watcher.seen if payload == b"forged"] == []


async def test_summit_reads_but_cannot_write(
        broker: Broker, summit: tuple[aiomqtt.Client, Watcher]) -> None:
    client, watcher = summit
    for topic in (builder_status_topic("b1"), task_log_topic(9)):
        await client.publish(topic, b"from summit", qos=1)
    async with broker.client("b2") as b2:
        await b2.publish(task_log_topic(9), b"sentinel b2", qos=1)
    await watcher.until(task_log_topic(9), b"sentinel b2")
    assert [t for t, payload in watcher.seen if payload == b"from summit"] == []


async def test_other_accounts_and_anonymous_clients_get_nothing(
        broker: Broker, summit: tuple[aiomqtt.Client, Watcher]) -> None:
    _, watcher = summit
    async with broker.client("vessel") as vessel:
        await vessel.publish(task_log_topic(10), b"from vessel", qos=1)
    with pytest.raises(aiomqtt.MqttError, match=re.compile("not authori[sz]ed", re.I)):
        async with broker.client(None):
            pass
    with pytest.raises(aiomqtt.MqttError, match=re.compile("not authori[sz]ed|bad user", re.I)):
        async with broker.client("b1", "wrong password"):
            pass
    async with broker.client("b1") as b1:
        await b1.publish(task_log_topic(10), b"sentinel b1", qos=1)
    await watcher.until(task_log_topic(10), b"sentinel b1")
    assert (task_log_topic(10), b"from vessel") not in watcher.seen
