"""Avalanche as a real process on real RabbitMQ and Mosquitto (issue 4 acceptance):
live log lines and presence on MQTT as `mosquitto_sub` sees them, a builder killed with
SIGKILL goes offline through its last will and its task is built by a second builder, and
a cancelled build ends `cancelled` with the builder then taking the next task."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from daemon.avalanche.build import remove_stale_trees
from daemon.avalanche.config import AvalancheConfig
from daemon.avalanche.identity import BuildIdentity, tree_path
from events import payloads as p
from events.amqp import AmqpBus
from events.envelope import new_event
from events.testing import Captured, captured_events
from events.topology import work
from tests.unit.avalanche.support import add_recipe, make_repo, task_for

pytestmark = [pytest.mark.rabbitmq, pytest.mark.mqtt, pytest.mark.slow]

MQTT_HOST, MQTT_PORT = "127.0.0.1", 1883
SLOW = """name: slow
version: 1.0.0
release: 1
summary: Takes its time, talking
license: MPL-2.0
build: |
    for i in $(seq 1 %d); do echo "slow step $i"; sleep 0.5; done
install: |
    mkdir -p $installdir/usr/share/slow && echo done > $installdir/usr/share/slow/done
"""


class Builder:
    """``cairn avalanche`` in its own process, configured through the environment."""

    def __init__(self, url: str, state: Path, name: str) -> None:
        self.name = name
        env = {**os.environ, "CAIRN_BUS_URL": url, "CAIRN_MQTT_URL": f"mqtt://{MQTT_HOST}:{MQTT_PORT}",
               "CAIRN_STATE_DIR": str(state), "CAIRN_AVALANCHE_BUILDER": name,
               "CAIRN_AVALANCHE_JOBS": "2", "CAIRN_LOG_LEVEL": "info"}
        self.log = state / f"{name}.log"
        state.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "daemon.cli", "avalanche"],
                                            env=env, stdout=out, stderr=subprocess.STDOUT)

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=30)


class MosquittoSub:
    """The real `mosquitto_sub -t 'cairn/#' -v`, its output collected line by line."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            ["mosquitto_sub", "-h", MQTT_HOST, "-p", str(MQTT_PORT), "-t", "cairn/#", "-v"],
            stdout=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._reader = asyncio.get_running_loop().run_in_executor(None, self._read)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    async def wait_for(self, predicate: object, timeout: float = 60) -> str:
        assert callable(predicate)
        for _ in range(int(timeout / 0.1)):
            for line in list(self.lines):
                if predicate(line):
                    return line
            await asyncio.sleep(0.1)
        raise AssertionError(f"mosquitto_sub never showed it; saw {self.lines[-20:]}")

    async def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        await self._reader
        assert self.process.stdout is not None
        self.process.stdout.close()


def _status(line: str, builder: str) -> str | None:
    prefix = f"cairn/builders/{builder}/status "
    if not line.startswith(prefix):
        return None
    return str(json.loads(line[len(prefix):])["state"])


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    path, _ = make_repo(tmp_path / "recipes")
    commit = add_recipe(path, "slow", SLOW % 12)
    yield path, commit


@pytest.fixture
async def bus(private_rabbitmq_url: str) -> AsyncIterator[AmqpBus]:
    connected = AmqpBus(private_rabbitmq_url, name="test")
    async with connected:
        await connected.declare(work("x86_64"))
        yield connected


async def _wait_done(seen: Captured, task_id: int, timeout: float = 90) -> p.BuildDone:
    for _ in range(int(timeout / 0.1)):
        for event in seen.of_type("build-done"):
            if event.data.task_id == task_id:
                done: p.BuildDone = event.data
                return done
        await asyncio.sleep(0.1)
    raise AssertionError(f"no build-done for task {task_id}; saw {[e.type for e in seen.events]}")


async def test_killed_builder_goes_offline_and_another_builds_its_task(
    tmp_path: Path, repo: tuple[Path, str], bus: AmqpBus, private_rabbitmq_url: str
) -> None:
    path, commit = repo
    first_name, second_name = (f"b{i}-{uuid.uuid4().hex[:6]}" for i in (1, 2))
    watcher = MosquittoSub()
    first = Builder(private_rabbitmq_url, tmp_path / "one", first_name)
    second: Builder | None = None
    try:
        await watcher.wait_for(lambda line: _status(line, first_name) == "online")
        task = task_for(path, commit, "slow")
        async with captured_events(bus, "build-started", "build-done") as seen:
            await bus.publish(new_event(task, source="test"))
            started = await seen.wait_for("build-started", timeout=60)
            assert started[0].data.builder == first_name
            await watcher.wait_for(lambda line: line.startswith(
                f"cairn/tasks/{task.task_id}/log ") and "slow step 2" in line)
            await watcher.wait_for(lambda line: _status(line, first_name) == "building")
            assert first.stop(signal.SIGKILL) == -signal.SIGKILL
            await watcher.wait_for(lambda line: _status(line, first_name) == "offline")
            second = Builder(private_rabbitmq_url, tmp_path / "two", second_name)
            done = await _wait_done(seen, task.task_id)
        assert done.builder == second_name
        assert done.outcome is p.Outcome.SUCCESS, done.reason
        assert [a.name for a in done.artefacts] == ["slow"]
        assert [e.data.builder for e in seen.of_type("build-started")] == [first_name,
                                                                             second_name]
    finally:
        first.stop(signal.SIGKILL)
        if second is not None:
            assert second.stop() == 0
        await watcher.close()
        # The killed builder's tree is left where it was; its next start removes it.
        killed = AvalancheConfig(root=tmp_path / "one" / "avalanche" / first_name)
        identity = BuildIdentity(killed.build_uid, killed.build_uid) if os.geteuid() == 0 \
            else None
        named = tree_path(killed.root, killed.work_dir, identity, "")
        assert len([p for p in named.parent.iterdir() if p.name.startswith(named.name)]) == 1
        assert remove_stale_trees(killed) >= 1
        assert [p for p in named.parent.iterdir() if p.name.startswith(named.name)] == []


async def test_cancelled_build_reports_and_the_builder_takes_the_next(
    tmp_path: Path, repo: tuple[Path, str], bus: AmqpBus, private_rabbitmq_url: str
) -> None:
    path, commit = repo
    name = f"b-{uuid.uuid4().hex[:6]}"
    builder = Builder(private_rabbitmq_url, tmp_path / "one", name)
    try:
        slow = task_for(path, commit, "slow")
        quick = task_for(path, commit, "libgreet")
        async with captured_events(bus, "build-started", "build-done") as seen:
            await bus.publish(new_event(slow, source="test"))
            await seen.wait_for("build-started", timeout=60)
            await asyncio.sleep(1.0)
            await bus.publish(new_event(p.TaskCancelled(task_id=slow.task_id, arch="x86_64",
                                                        reason="superseded by release 2"),
                                        source="test"))
            cancelled = await _wait_done(seen, slow.task_id)
            await bus.publish(new_event(quick, source="test"))
            built = await _wait_done(seen, quick.task_id)
        assert cancelled.outcome is p.Outcome.CANCELLED
        assert cancelled.reason is not None and "superseded by release 2" in cancelled.reason
        assert built.outcome is p.Outcome.SUCCESS, built.reason
        assert {a.name for a in built.artefacts} >= {"libgreet"}
    finally:
        assert builder.stop() == 0
