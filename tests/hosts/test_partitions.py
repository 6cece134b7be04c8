"""Partitions: a host's link taken down mid-build, for longer than the broker's heartbeat.

A builder cut off loses its task to another builder (summit stops hearing its
``builder-seen``); its late report, sent when the link is back, changes nothing — no second
publication, no state going back — and it takes work again. The control host (summit,
vessel, journal) cut off for a while: the build in flight completes once when it is back.
Every service runs in its own network namespace (:mod:`tests.support.hostfarm`); the link
is really down, so every connection of the host breaks as on a real network.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.farm import bump_release, commit, slow_recipe
from tests.support.hostfarm import HostFarm, all_final
from tests.support.hosts import Host, Network
from tests.unit.avalanche.support import git

pytestmark = [pytest.mark.hosts, pytest.mark.rabbitmq, pytest.mark.mqtt, pytest.mark.slow,
              pytest.mark.timeout(600)]

#: Long enough to cut a host mid-build and to outlast the heartbeats below (~12 s).
SLOW = slow_recipe(24)
#: Seconds: the AMQP heartbeat every client asks for, and the builders' ``builder-seen``
#: period (summit gives a builder up after three missed ones).
AMQP_HEARTBEAT, SEEN_PERIOD = 2, 1.0
#: A cut lasts longer than both: the broker drops the connection, summit the builder.
CUT_S = 4 * AMQP_HEARTBEAT + 4 * SEEN_PERIOD


def _slow_repo(path: Path) -> Path:
    (path / "slow").mkdir(parents=True)
    (path / "slow" / "stone.yaml").write_text(SLOW)
    git(path, "init", "-q", "-b", "main")
    commit(path, "slow")
    return path


@pytest.fixture
def farm(host_network: Network, tmp_path: Path) -> Iterator[HostFarm]:
    repo = _slow_repo(tmp_path / "forge" / "recipes")
    running = HostFarm(host_network, tmp_path / "state", repo, builders=2, brokers=1,
                       amqp_heartbeat=AMQP_HEARTBEAT,
                       builder_env={"CAIRN_AVALANCHE_HEARTBEAT_S": str(SEEN_PERIOD)},
                       # The lost build's next attempt after a second, not the default 10.
                       summit_env={"CAIRN_SUMMIT_RETRY_BACKOFF_S": "1"})
    try:
        running.start()
        yield running
    finally:
        for host in running.network.hosts.values():
            if host.is_cut:
                host.restore()
        running.stop()


async def _building(farm: HostFarm, source: str, release: int, timeout: float = 120,
                    on: str | None = None) -> dict[str, Any]:
    """The task of ``source`` ``release`` once it is building (on builder ``on``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for task in await farm.tasks():
            if ((task["source"], task["release"], task["state"]) == (source, release,
                                                                    "building")
                    and task["builder"] and on in (None, task["builder"])):
                return task
        await asyncio.sleep(0.3)
    raise AssertionError(f"{source} {release} never started building"
                         f"{' on ' + on if on else ''}\n{farm.logs()}")


async def _task(farm: HostFarm, task_id: int) -> dict[str, Any]:
    for task in await farm.tasks():
        if task["id"] == task_id:
            return task
    raise AssertionError(f"task {task_id} is gone")


def _host(farm: HostFarm, name: str) -> Host:
    return next(h for h in farm.builder_hosts if h.name == name)


async def _timeline(farm: HostFarm, task_id: int) -> list[str]:
    async with aiohttp.ClientSession() as session, session.get(
            f"{farm.summit_url}/api/v1/tasks/{task_id}") as response:
        response.raise_for_status()
        return [str(e["summary"]) for e in (await response.json())["timeline"]]


def _published(farm: HostFarm) -> list[tuple[str, int]]:
    return [(p["name"], int(p["release"])) for e in farm.journal()
            if e["type"] == "package-published" for p in e["data"]["packages"]]


async def test_a_builder_cut_off_mid_build_loses_its_task_and_its_late_report_changes_nothing(
        farm: HostFarm) -> None:
    first = await _building(farm, "slow", 1)
    cut = _host(farm, first["builder"])
    other = next(h.name for h in farm.builder_hosts if h is not cut)
    await asyncio.sleep(2)  # mid-build
    cut.cut()

    # Summit gives the cut builder up and another finishes the task, while the first one
    # is still cut off (its build goes on inside the namespace: nothing tells it to stop).
    again = await _building(farm, "slow", 1, timeout=60, on=other)
    assert again["id"] == first["id"] and again["attempt"] > first["attempt"]
    await asyncio.sleep(max(0.0, CUT_S - 2))
    assert cut.is_cut
    tasks = await farm.wait_tasks(all_final(1), timeout=120)
    (task,) = tasks
    assert (task["state"], task["builder"]) == ("completed", other), task
    cut.restore()

    # Back on the network, the first builder reports its build of attempt 1: summit notes
    # it and ignores it.
    deadline = time.monotonic() + 90
    note = f"report of attempt {first['attempt']} from {cut.name} ignored"
    while not any(note in line for line in await _timeline(farm, task["id"])):
        assert time.monotonic() < deadline, (
            f"the late report never arrived: {await _timeline(farm, task['id'])}\n"
            f"{farm.logs()}")
        await asyncio.sleep(0.5)
    done = [(e["data"]["builder"], e["data"]["attempt"]) for e in farm.journal()
            if e["type"] == "build-done"]
    assert (cut.name, first["attempt"]) in done and (other, task["attempt"]) in done, done
    after = await _task(farm, task["id"])
    assert (after["state"], after["builder"], after["attempt"]) == (
        "completed", other, task["attempt"]), "the late report moved the task"
    assert _published(farm) == [("slow", 1)]
    index = await farm.index()
    assert [p["name"] for p in index["packages"]] == ["slow"]

    # It takes work again: with the other builder cut off in turn, the next release is
    # built by the one that came back.
    _host(farm, other).cut()
    await asyncio.sleep(4 * SEEN_PERIOD)
    bump_release(farm.recipes, "slow", 2)
    commit(farm.recipes, "slow: release 2")
    second = await _building(farm, "slow", 2, timeout=120)
    assert second["builder"] == cut.name
    tasks = await farm.wait_tasks(lambda ts: any(
        t["release"] == 2 and t["state"] == "completed" for t in ts), timeout=120)
    assert [t["builder"] for t in tasks if t["release"] == 2] == [cut.name]
    assert sorted(_published(farm)) == [("slow", 1), ("slow", 2)]


async def test_the_control_host_cut_off_mid_build_the_build_completes_once(
        farm: HostFarm) -> None:
    first = await _building(farm, "slow", 1)
    await asyncio.sleep(2)
    farm.control_host.cut()
    await asyncio.sleep(CUT_S)
    farm.control_host.restore()

    tasks = await farm.wait_tasks(all_final(1), timeout=180)
    (task,) = tasks
    assert task["state"] == "completed", task
    assert task["id"] == first["id"]
    assert _published(farm) == [("slow", 1)]
    index = await farm.index()
    assert [(p["name"], p["release"]) for p in index["packages"]] == [("slow", 1)]
    # Every successful report of the task was from its final attempt: whatever summit
    # decided while it could not hear, one build was accepted and published.
    accepted = [e["data"] for e in farm.journal() if e["type"] == "build-accepted"]
    assert [(a["task_id"], a["attempt"]) for a in accepted] == [(task["id"], task["attempt"])]
