"""Summit's decision holds however late a builder takes its assignment, on both transports.

The farm is the one ``cairn up`` runs (summit, vessel and the journal, each the class its
daemon runs) on the embedded broker or on RabbitMQ, with one real builder that the test can
hold: while held, the builder takes its assignment (``task-ready``) off its queue and then
waits before doing anything with it — a process stalled between receiving a task and
claiming it (swapping, a long pause, SIGSTOP). The test moves the recipe repository on
meanwhile, or an operator cancels the task, so that summit cancels or supersedes the task
the builder holds, and then lets the builder go. The builder claims, summit refuses the
claim, the builder says it did not start the task, and nothing of it is built or published:
the index says what the recipes at head say and summit agrees.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog

from daemon.avalanche.daemon import AvalancheDaemonConfig, AvalancheSection, core_config
from daemon.avalanche.service import Avalanche
from daemon.embedded import EmbeddedFarm, UpOptions, start_farm, stop_farm
from daemon.host import Host
from daemon.runtime import BusSection, Health, StateSection
from daemon.summit.planning.states import Task, TaskState
from events import connect
from events import payloads as p
from events.envelope import Event
from events.memory import MemoryBroker
from tests.e2e.farm import QUICK, bump_release, commit, recipe_repo
from tests.support.index import read_index

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

SOURCE = "tally-docs"
BUILDER = "held"


class HeldBuilder(Avalanche):
    """The real builder, with a gate between taking an assignment off its queue and
    handling it. Everything after the gate is the builder's own code."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.taken: list[p.TaskReady] = []
        self._gate = asyncio.Event()
        self._gate.set()

    def hold(self) -> None:
        self._gate.clear()

    def let_go(self) -> None:
        self._gate.set()

    async def _on_event(self, event: Event[Any]) -> None:
        if isinstance(event.data, p.TaskReady):
            self.taken.append(event.data)
            await self._gate.wait()
        await super()._on_event(event)


@dataclass
class RaceFarm:
    farm: EmbeddedFarm
    builder: HeldBuilder
    repo: Path
    state: Path

    def task(self, release: int) -> Task | None:
        found = [t for t in self.farm.tasks() if t.source == SOURCE and t.release == release]
        return found[-1] if found else None

    async def until(self, what: str, check: Callable[[], object], timeout: float = 60) -> None:
        for _ in range(int(timeout / 0.1)):
            if check():
                return
            await asyncio.sleep(0.1)
        states = [(t.task_id, t.release, str(t.state), t.builder, t.failure)
                  for t in self.farm.tasks()]
        raise AssertionError(f"not {what} within {timeout}s; summit has {states}")

    def state_of(self, release: int) -> TaskState | None:
        task = self.task(release)
        return task.state if task is not None else None

    def index_releases(self) -> set[int]:
        """The releases of the source in the signed index vessel serves now."""
        (index,) = self.state.glob("vessel/repo/volatile/x86_64/current/index.json")
        return {pkg.release for pkg in read_index(index).packages if pkg.source == SOURCE}

    def journal(self, task_id: int) -> list[str]:
        """The types of every event the journal recorded about a task, in order."""
        out = subprocess.run([sys.executable, "-m", "daemon.cli", "events", "export",
                              "--journal", str(self.state / "journal.sqlite")],
                             capture_output=True, text=True, check=True).stdout
        events = [json.loads(line) for line in out.splitlines()]
        return [e["type"] for e in events if e["data"].get("task_id") == task_id]


@pytest.fixture(params=["memory", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
def broker_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "memory":
        # The embedded broker is one per process: this test's own, as `cairn up` has.
        monkeypatch.setattr(connect, "_PROCESS_BROKER", MemoryBroker())
        return "memory://"
    url: str = request.getfixturevalue("private_rabbitmq_url")
    return url


@pytest.fixture
async def race(tmp_path: Path, broker_url: str) -> AsyncIterator[RaceFarm]:
    repo = recipe_repo(tmp_path / "recipes", {SOURCE: QUICK}, examples=False)
    state = tmp_path / "state"
    farm = await start_farm(UpOptions(state=state, recipes=str(repo), builders=0,
                                      broker=broker_url, port=0, poll_interval=0.3))
    host = Host(Health(BUILDER))
    try:
        config = AvalancheDaemonConfig(bus=BusSection(url=broker_url),
                                       state=StateSection(dir=str(state)),
                                       avalanche=AvalancheSection(builder=BUILDER,
                                                                  environment="host"))
        bus = await host.bus(broker_url, name=BUILDER)
        telemetry = await host.telemetry("memory://", client_id=BUILDER)
        builder = HeldBuilder(bus, telemetry, core_config(config), heartbeat_s=1.0)
        await builder.start()
        try:
            running = RaceFarm(farm, builder, repo, state)
            await running.until("release 1 published",
                                lambda: running.state_of(1) is TaskState.COMPLETED)
            yield running
        finally:
            builder.let_go()
            await builder.stop()
    finally:
        await host.close()
        await stop_farm(farm)


async def _hold_an_assignment(race: RaceFarm, release: int) -> Task:
    """Bump the recipe to ``release`` while the builder is held, until the builder has
    taken summit's assignment of it off its queue."""
    race.builder.hold()
    bump_release(race.repo, SOURCE, release)
    commit(race.repo, f"{SOURCE}: release {release}")
    await race.until(f"release {release} assigned and taken by the builder",
                     lambda: any(t.release == release for t in race.builder.taken))
    task = race.task(release)
    assert task is not None and task.assigned and task.builder == BUILDER, task
    return task


def _not_started(logs: list[dict[str, Any]], task_id: int) -> list[str]:
    return [str(e.get("reason")) for e in logs
            if e.get("event") == "avalanche.not_started" and e.get("task_id") == task_id]


async def test_a_task_cancelled_while_its_builder_held_it_is_never_built(
        race: RaceFarm) -> None:
    with structlog.testing.capture_logs() as logs:
        bumped = await _hold_an_assignment(race, 2)
        bump_release(race.repo, SOURCE, 1)
        commit(race.repo, f"{SOURCE}: back to release 1")
        await race.until("the bump cancelled",
                         lambda: race.state_of(2) is TaskState.CANCELLED)
        race.builder.let_go()
        await race.until("the builder refused", lambda: race.builder.refused == 1)
    (reason,) = _not_started(logs, bumped.task_id)
    assert "no longer asks for this release" in reason
    # The index says what the recipe at head says, and summit agrees.
    assert race.index_releases() == {1}
    assert [(t.release, t.state) for t in race.farm.tasks()] == [
        (1, TaskState.COMPLETED), (2, TaskState.CANCELLED)]
    # The builder is free and builds the next release; nothing of release 2 happened.
    bump_release(race.repo, SOURCE, 3)
    commit(race.repo, f"{SOURCE}: release 3")
    await race.until("release 3 published", lambda: race.state_of(3) is TaskState.COMPLETED)
    assert race.index_releases() == {3}
    assert race.builder.builds_done == 2
    recorded = race.journal(bumped.task_id)
    assert "task-ready" in recorded and "build-started" in recorded, recorded
    assert not {"build-admitted", "build-done", "build-accepted",
                "package-published"} & set(recorded), recorded


async def test_a_task_superseded_while_its_builder_held_it_is_never_built(
        race: RaceFarm) -> None:
    with structlog.testing.capture_logs() as logs:
        older = await _hold_an_assignment(race, 2)
        bump_release(race.repo, SOURCE, 3)
        commit(race.repo, f"{SOURCE}: release 3")
        await race.until("release 2 superseded by release 3",
                         lambda: race.state_of(2) is TaskState.SUPERSEDED
                         and race.state_of(3) is TaskState.READY)
        race.builder.let_go()
        await race.until("release 3 published", lambda: race.state_of(3) is TaskState.COMPLETED)
        await race.until("the builder refused", lambda: race.builder.refused == 1)
    (reason,) = _not_started(logs, older.task_id)
    assert "summit cancelled the task before it started" in reason
    assert race.index_releases() == {3}
    assert [(t.release, t.state) for t in race.farm.tasks()] == [
        (1, TaskState.COMPLETED), (2, TaskState.SUPERSEDED), (3, TaskState.COMPLETED)]
    assert race.builder.builds_done == 2  # release 1 and release 3, not release 2
    recorded = race.journal(older.task_id)
    assert "task-ready" in recorded and "build-started" in recorded, recorded
    assert not {"build-admitted", "build-done", "build-accepted",
                "package-published"} & set(recorded), recorded


async def test_a_task_an_operator_cancelled_while_its_builder_held_it_is_never_built(
        race: RaceFarm) -> None:
    with structlog.testing.capture_logs() as logs:
        bumped = await _hold_an_assignment(race, 2)
        token = (race.state / "summit" / "admin.token").read_text().strip()
        async with aiohttp.ClientSession() as session, session.post(
                f"{race.farm.summit_url}/api/v1/tasks/{bumped.task_id}/cancel",
                headers={"Authorization": f"Bearer {token}"}) as response:
            assert response.status == 200, await response.text()
            assert (await response.json())["state"] == "cancelled"
        race.builder.let_go()
        await race.until("the builder refused", lambda: race.builder.refused == 1)
    (reason,) = _not_started(logs, bumped.task_id)
    assert "summit cancelled the task before it started" in reason
    assert race.index_releases() == {1}
    assert race.builder.builds_done == 1
    recorded = race.journal(bumped.task_id)
    assert not {"build-admitted", "build-done", "build-accepted",
                "package-published"} & set(recorded), recorded
