"""Avalanche as a real process on real RabbitMQ and Mosquitto, with the test playing summit:
the builder claims its assignment and builds only once admitted; a task cancelled before
its admission never starts, however late the admission comes; live log lines and presence
on MQTT as `mosquitto_sub` sees them; a builder killed with SIGKILL goes offline through its
last will, stops reporting itself, and comes back as a new boot; a cancelled build ends
`cancelled` with the builder then taking the next task."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import msgspec
import pytest

from daemon.avalanche.build import remove_stale_trees
from daemon.avalanche.config import AvalancheConfig
from daemon.avalanche.identity import BuildIdentity, tree_path
from events import payloads as p
from events.amqp import AmqpBus
from events.envelope import new_event
from events.testing import Captured, captured_events
from tests.e2e.farm import slow_recipe
from tests.unit.avalanche.support import add_recipe, make_repo, task_for

pytestmark = [pytest.mark.rabbitmq, pytest.mark.mqtt, pytest.mark.slow]

MQTT_HOST, MQTT_PORT = "127.0.0.1", 1883


class Builder:
    """``cairn avalanche`` in its own process, configured through the environment."""

    def __init__(self, url: str, state: Path, name: str) -> None:
        self.name = name
        env = {**os.environ, "CAIRN_BUS_URL": url, "CAIRN_MQTT_URL": f"mqtt://{MQTT_HOST}:{MQTT_PORT}",
               "CAIRN_STATE_DIR": str(state), "CAIRN_AVALANCHE_BUILDER": name,
               "CAIRN_AVALANCHE_JOBS": "2", "CAIRN_AVALANCHE_HEARTBEAT_S": "0.5",
               "CAIRN_AVALANCHE_ENVIRONMENT": "host",
               "CAIRN_LOG_LEVEL": "info"}
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
    commit = add_recipe(path, "slow", slow_recipe(12))
    yield path, commit


@pytest.fixture
async def bus(private_rabbitmq_url: str) -> AsyncIterator[AmqpBus]:
    connected = AmqpBus(private_rabbitmq_url, name="test")
    async with connected:
        yield connected


def assigned(task: p.TaskReady, builder: str, attempt: int = 1) -> p.TaskReady:
    """The task as summit assigns it, with an id no other test run on the shared Mosquitto
    uses (its live log topic is named by it)."""
    return msgspec.structs.replace(task, builder=builder, attempt=attempt,
                                   task_id=random.randrange(10**6, 10**9))


async def admit(bus: AmqpBus, task: p.TaskReady) -> None:
    await bus.publish(new_event(p.BuildAdmitted(task_id=task.task_id, attempt=task.attempt,
                                                 builder=task.builder, arch=task.arch),
                                source="test"))


async def _wait_done(seen: Captured, task_id: int, timeout: float = 90) -> p.BuildDone:
    for _ in range(int(timeout / 0.1)):
        for event in seen.of_type("build-done"):
            if event.data.task_id == task_id:
                done: p.BuildDone = event.data
                return done
        await asyncio.sleep(0.1)
    raise AssertionError(f"no build-done for task {task_id}; saw {[e.type for e in seen.events]}")


async def _claimed(seen: Captured, task: p.TaskReady) -> p.BuildStarted:
    for _ in range(600):
        for event in seen.of_type("build-started"):
            if (event.data.task_id, event.data.attempt) == (task.task_id, task.attempt):
                claim: p.BuildStarted = event.data
                return claim
        await asyncio.sleep(0.1)
    raise AssertionError(f"task {task.task_id} attempt {task.attempt} was never claimed")


async def _online(seen: Captured, builder: str) -> p.BuilderSeen:
    for _ in range(600):
        for event in reversed(seen.of_type("builder-seen")):
            if event.data.builder == builder:
                report: p.BuilderSeen = event.data
                return report
        await asyncio.sleep(0.1)
    raise AssertionError(f"{builder} never reported itself")


async def test_a_builder_builds_only_what_summit_admits(
    tmp_path: Path, repo: tuple[Path, str], bus: AmqpBus, private_rabbitmq_url: str
) -> None:
    path, commit = repo
    name = f"b-{uuid.uuid4().hex[:6]}"
    watcher = MosquittoSub()
    async with captured_events(bus, "builder-seen", "build-started", "build-done") as seen:
        builder = Builder(private_rabbitmq_url, tmp_path / "one", name)
        try:
            report = await _online(seen, name)
            assert (report.slots, report.state) == (1, p.BuilderState.ONLINE)
            cancelled = assigned(task_for(path, commit, "slow"), name)
            await bus.publish(new_event(cancelled, source="test"))
            claim = await _claimed(seen, cancelled)
            assert claim.builder == name
            # Summit cancels before admitting; a late admission changes nothing.
            await bus.publish(new_event(p.TaskCancelled(
                task_id=cancelled.task_id, builder=name, arch="x86_64", attempt=1,
                reason="its recipe no longer asks for this release"), source="test"))
            await admit(bus, cancelled)
            quick = assigned(task_for(path, commit, "libgreet"), name)
            await bus.publish(new_event(quick, source="test"))
            await _claimed(seen, quick)
            await admit(bus, quick)
            built = await _wait_done(seen, quick.task_id)
            assert built.outcome is p.Outcome.SUCCESS, built.reason
            assert (built.attempt, built.builder) == (1, name)
            assert {a.name for a in built.artefacts} >= {"libgreet"}
            # The cancelled task never started: no report, no log line, and the builder says so.
            assert [e.data.task_id for e in seen.of_type("build-done")] == [quick.task_id]
            assert not [line for line in watcher.lines
                        if line.startswith(f"cairn/tasks/{cancelled.task_id}/log ")]
        finally:
            assert builder.stop() == 0
            await watcher.close()
    logged = builder.log.read_text()
    assert "avalanche.not_started" in logged and "no longer asks for this release" in logged


async def test_killed_builder_goes_offline_and_comes_back_as_a_new_boot(
    tmp_path: Path, repo: tuple[Path, str], bus: AmqpBus, private_rabbitmq_url: str
) -> None:
    path, commit = repo
    name = f"b-{uuid.uuid4().hex[:6]}"
    watcher = MosquittoSub()
    first = Builder(private_rabbitmq_url, tmp_path / "one", name)
    second: Builder | None = None
    try:
        await watcher.wait_for(lambda line: _status(line, name) == "online")
        task = assigned(task_for(path, commit, "slow"), name)
        async with captured_events(bus, "builder-seen", "build-started", "build-done") as seen:
            await _online(seen, name)
            await bus.publish(new_event(task, source="test"))
            await _claimed(seen, task)
            await admit(bus, task)
            await watcher.wait_for(lambda line: line.startswith(
                f"cairn/tasks/{task.task_id}/log ") and "slow step 2" in line)
            await watcher.wait_for(lambda line: _status(line, name) == "building")
            before = await _online(seen, name)
            assert [t.task_id for t in before.running] == [task.task_id]
            assert first.stop(signal.SIGKILL) == -signal.SIGKILL
            await watcher.wait_for(lambda line: _status(line, name) == "offline")
            # A report sent just before the kill may still be on its way through the broker
            # (MQTT's "offline" can overtake it; seen in CI): let it land, then count.
            await asyncio.sleep(1.0)
            reports = len(seen.of_type("builder-seen"))
            await asyncio.sleep(1.5)
            assert len(seen.of_type("builder-seen")) == reports  # a dead builder is silent
            # The killed builder's tree is left where it was; its next start removes it.
            killed = AvalancheConfig(root=tmp_path / "one" / "avalanche" / name)
            identity = BuildIdentity(killed.build_uid, killed.build_uid) \
                if os.geteuid() == 0 else None
            named = tree_path(killed.root, killed.work_dir, identity, "")

            def trees() -> list[Path]:
                return [p for p in named.parent.iterdir() if p.name.startswith(named.name)]

            assert len(trees()) == 1
            second = Builder(private_rabbitmq_url, tmp_path / "one", name)
            for _ in range(300):
                latest = await _online(seen, name)
                if latest.boot != before.boot:
                    break
                await asyncio.sleep(0.1)
            assert latest.boot != before.boot and latest.running == []
            assert not seen.of_type("build-done")  # nobody reported the killed build
            assert trees() == [] and remove_stale_trees(killed) == 0
    finally:
        first.stop(signal.SIGKILL)
        if second is not None:
            assert second.stop() == 0
        await watcher.close()


async def test_cancelled_build_reports_and_the_builder_takes_the_next(
    tmp_path: Path, repo: tuple[Path, str], bus: AmqpBus, private_rabbitmq_url: str
) -> None:
    path, commit = repo
    name = f"b-{uuid.uuid4().hex[:6]}"
    builder = Builder(private_rabbitmq_url, tmp_path / "one", name)
    try:
        slow = assigned(task_for(path, commit, "slow"), name)
        quick = assigned(task_for(path, commit, "libgreet"), name)
        async with captured_events(bus, "builder-seen", "build-started", "build-done") as seen:
            await _online(seen, name)  # its queue exists once it reports itself
            await bus.publish(new_event(slow, source="test"))
            await _claimed(seen, slow)
            await admit(bus, slow)
            await asyncio.sleep(1.5)
            await bus.publish(new_event(p.TaskCancelled(task_id=slow.task_id, builder=name,
                                                        arch="x86_64",
                                                        reason="superseded by release 2"),
                                        source="test"))
            cancelled = await _wait_done(seen, slow.task_id)
            await bus.publish(new_event(quick, source="test"))
            await _claimed(seen, quick)
            await admit(bus, quick)
            built = await _wait_done(seen, quick.task_id)
        assert cancelled.outcome is p.Outcome.CANCELLED
        assert cancelled.reason is not None and "superseded by release 2" in cancelled.reason
        assert built.outcome is p.Outcome.SUCCESS, built.reason
        assert {a.name for a in built.artefacts} >= {"libgreet"}
    finally:
        assert builder.stop() == 0
