"""End to end: every service its own OS process on real RabbitMQ and Mosquitto, a
git repository made by the test, the script backend compiling real C."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from events.bus import Subscription
from events.topology import JOURNAL, SUMMIT, VESSEL
from events.topology import builder as builder_subscription
from tests.e2e.farm import (
    ProcessFarm,
    all_final,
    bump_release,
    commit,
    latest_by_source,
    recipe_repo,
    slow_recipe,
)
from tests.support.mosquitto import MosquittoBroker
from tests.support.rabbitmq import RabbitNode

pytestmark = [pytest.mark.rabbitmq, pytest.mark.mqtt, pytest.mark.slow,
              pytest.mark.timeout(600)]

EXAMPLES = {"libgreet", "greet", "greet-banner", "diamond-a", "diamond-b", "diamond-c",
            "diamond-d"}
SLOW = slow_recipe(16)
#: A killed builder is given up after three missed heartbeats, and its task's next attempt
#: waits for the back-off: seconds here rather than the defaults' 30 and 10.
QUICK_TO_RETRY: dict[str, Any] = {
    "builder_env": {"CAIRN_AVALANCHE_HEARTBEAT_S": "2"},
    "summit_env": {"CAIRN_SUMMIT_RETRY_BACKOFF_S": "1"}}


@pytest.fixture
async def farm(tmp_path: Path, private_rabbitmq_url: str,
               private_mosquitto: MosquittoBroker) -> AsyncIterator[ProcessFarm]:
    repo = recipe_repo(tmp_path / "recipes", {"slow": SLOW})
    running = ProcessFarm(private_rabbitmq_url, repo, tmp_path / "state",
                          mqtt_url=private_mosquitto.url, **QUICK_TO_RETRY)
    running.start_all(builders=2)
    try:
        yield running
    finally:
        running.stop_all()


def _verify(farm: ProcessFarm) -> None:
    done = subprocess.run([sys.executable, "-m", "daemon.cli", "channel", "verify",
                           farm.vessel_url, "--channel", "volatile", "--arch", "x86_64",
                           "--allow-not-hermetic",
                           "--seen-file", str(farm.state / "repo-seen.json")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def _index_names(farm: ProcessFarm) -> list[str]:
    return sorted(p["name"] for p in farm.index()["packages"])


def _by_type(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == kind]


async def test_first_commit_builds_in_order_in_parallel_then_a_bump_rebuilds_one(
        farm: ProcessFarm, tmp_path: Path) -> None:
    """One run of the examples, checked for every fact it shows: dependencies build first,
    two builders side by side, every service serves /healthz and /metrics, replaying every
    recorded event changes nothing; then a release bump rebuilds that one source."""
    tasks = await farm.wait_tasks(all_final(8))
    assert {t["source"] for t in tasks} == EXAMPLES | {"slow"}
    assert all(t["state"] == "completed" for t in tasks), tasks
    _verify(farm)
    events = farm.journal()
    published_at = {e["data"]["task_id"]: i for i, e in enumerate(events)
                    if e["type"] == "package-published"}
    started_at = {e["data"]["task_id"]: i for i, e in enumerate(events)
                  if e["type"] == "build-started"}
    by_source = {t["source"]: t["id"] for t in tasks}
    order = [("libgreet", "greet"), ("greet", "greet-banner"), ("diamond-a", "diamond-b"),
             ("diamond-a", "diamond-c"), ("diamond-b", "diamond-d"), ("diamond-c", "diamond-d")]
    for provider, user in order:
        assert published_at[by_source[provider]] < started_at[by_source[user]], (provider, user)
    # Two builders worked side by side: some build started while another was running.
    running: set[str] = set()
    overlapped = False
    for event in events:
        if event["type"] == "build-started":
            overlapped |= bool(running)
            running.add(event["data"]["builder"])
        elif event["type"] == "build-done":
            running.discard(event["data"]["builder"])
    assert overlapped, "no two builds ran at the same time"
    assert {e["data"]["builder"] for e in _by_type(events, "build-started")} == {
        "builder1", "builder2"}
    await _every_service_serves_health_and_metrics(farm)
    await _replaying_every_event_changes_nothing(farm, tasks, tmp_path)

    generation = farm.index()["generation"]
    bump_release(farm.repo, "greet", 2)
    commit(farm.repo, "greet: release 2")
    tasks = await farm.wait_tasks(all_final(9))
    new = [t for t in tasks if t["id"] not in by_source.values()]
    assert [(t["source"], t["release"], t["state"], t["reason"]) for t in new] == [
        ("greet", 2, "completed", "release bump")]
    index = farm.index()
    assert index["generation"] == generation + 1
    greet = [p for p in index["packages"] if p["source"] == "greet"]
    assert greet and all(p["release"] == 2 for p in greet)
    _verify(farm)


FAILING = "echo 'this build is broken on purpose' >&2; exit 3"


async def test_failure_blocks_dependents_and_a_fix_unblocks_them(
        tmp_path: Path, private_rabbitmq_url: str, private_mosquitto: MosquittoBroker) -> None:
    repo = recipe_repo(tmp_path / "recipes")
    recipe = repo / "diamond-a" / "stone.yaml"
    good = recipe.read_text()
    bump_release(repo, "diamond-a", 1, build=FAILING)
    commit(repo, "diamond-a: broken")
    farm = ProcessFarm(private_rabbitmq_url, repo, tmp_path / "state",
                       mqtt_url=private_mosquitto.url)
    farm.start_all(builders=2)
    try:
        await _fail_then_fix(farm, recipe, good)
    finally:
        farm.stop_all()


async def _fail_then_fix(farm: ProcessFarm, recipe: Path, good: str) -> None:
    tasks = await farm.wait_tasks(all_final(7))
    latest = latest_by_source(tasks)
    failed = latest["diamond-a"]
    assert failed["state"] == "failed", failed
    assert failed["attempt"] == 1 and failed["retry_at"] is None  # a build failure: final
    assigned = [e for e in _by_type(farm.journal(), "task-ready")
                if e["data"]["task_id"] == failed["id"]]
    assert [e["data"]["attempt"] for e in assigned] == [1]
    assert failed["failure"].startswith("failed: step build exited with status 3"), failed
    assert "broken on purpose" in failed["failure"], failed
    for user in ("diamond-b", "diamond-c"):
        assert latest[user]["state"] == "blocked"
        assert {"kind": "failed", "source": "diamond-a", "task_id": failed["id"]} in latest[
            user]["blocked_by"], latest[user]
    assert latest["diamond-d"]["state"] == "blocked"
    assert latest["greet"]["state"] == "completed"

    recipe.write_text(good)
    bump_release(farm.repo, "diamond-a", 2)
    commit(farm.repo, "diamond-a: fixed")
    tasks = await farm.wait_tasks(lambda ts: all(
        t["state"] == "completed" for t in latest_by_source(ts).values()))
    latest = latest_by_source(tasks)
    assert latest["diamond-a"]["release"] == 2
    assert latest["diamond-d"]["state"] == "completed"
    _verify(farm)


async def test_builder_killed_mid_build_another_completes_it(farm: ProcessFarm) -> None:
    builder = await _builder_of(farm, "slow")
    await asyncio.sleep(1.5)
    assert farm.kill(builder) == -signal.SIGKILL
    tasks = await farm.wait_tasks(all_final(8))
    latest = latest_by_source(tasks)
    assert latest["slow"]["state"] == "completed"
    assert latest["slow"]["builder"] != builder
    # Retried automatically (infrastructure: its builder was lost), after its back-off.
    assert latest["slow"]["attempt"] == 2
    assigned = [e for e in _by_type(farm.journal(), "task-ready")
                if e["data"]["task_id"] == latest["slow"]["id"]]
    assert [e["data"]["attempt"] for e in assigned] == [1, 2]
    done = [e for e in _by_type(farm.journal(), "build-done")
            if e["data"]["task_id"] == latest["slow"]["id"]]
    assert [e["data"]["builder"] for e in done] == [latest["slow"]["builder"]]
    assert _index_names(farm).count("slow") == 1
    _verify(farm)


async def _builder_of(farm: ProcessFarm, source: str, timeout: float = 120) -> str:
    for _ in range(int(timeout / 0.5)):
        try:
            tasks = await farm.tasks()
        except aiohttp.ClientError:
            tasks = []
        for task in tasks:
            if task["source"] == source and task["state"] == "building" and task["builder"]:
                return str(task["builder"])
        await asyncio.sleep(0.5)
    raise AssertionError(f"{source} never started building\n{farm.logs()}")


@pytest.fixture
async def farm_on_private_node(tmp_path: Path, private_rabbit: RabbitNode,
                               private_mosquitto: MosquittoBroker) -> AsyncIterator[ProcessFarm]:
    """The farm on a RabbitMQ node of its own, which the test may restart: other test runs
    share the machine's broker."""
    vhost = f"e2e-{uuid.uuid4().hex[:8]}"
    private_rabbit.add_vhost(vhost)
    repo = recipe_repo(tmp_path / "recipes", {"slow": SLOW})
    running = ProcessFarm(private_rabbit.url(vhost), repo, tmp_path / "state",
                   mqtt_url=private_mosquitto.url)
    running.start_all(builders=2)
    try:
        yield running
    finally:
        running.stop_all()


async def test_rabbitmq_restarted_mid_run(farm_on_private_node: ProcessFarm,
                                          private_rabbit: RabbitNode) -> None:
    farm = farm_on_private_node
    await _builder_of(farm, "slow")
    private_rabbit.ctl("stop_app")
    await asyncio.sleep(2)
    private_rabbit.ctl("start_app")
    private_rabbit.ctl("await_startup")
    tasks = await farm.wait_tasks(all_final(8), timeout=300)
    latest = latest_by_source(tasks)
    assert all(t["state"] == "completed" for t in latest.values()), latest
    names = _index_names(farm)
    assert len(names) == len(set(names)), names
    events = farm.journal()
    published = [e["data"]["task_id"] for e in _by_type(events, "package-published")]
    assert len(published) == len(set(published)), "a build was published twice"
    _verify(farm)


async def test_summit_killed_and_restarted_mid_run(farm: ProcessFarm) -> None:
    await _builder_of(farm, "slow")
    assert farm.kill("summit") == -signal.SIGKILL
    await asyncio.sleep(1)
    farm.start_summit()
    tasks = await farm.wait_tasks(all_final(8))
    assert len(tasks) == 8, tasks
    assert all(t["state"] == "completed" for t in tasks), tasks
    assert sorted(t["source"] for t in tasks) == sorted(EXAMPLES | {"slow"})
    _verify(farm)


async def _replaying_every_event_changes_nothing(farm: ProcessFarm, tasks: list[dict[str, Any]],
                                                tmp_path: Path) -> None:
    index = farm.index()
    before = farm.journal()

    # Issue 8: the recorded run fed to a fresh summit that publishes nothing reaches the same
    # task states as the original.
    recording = tmp_path / "run.jsonl"
    recording.write_text("".join(json.dumps(e) + "\n" for e in before))
    dry = subprocess.run([sys.executable, "-m", "daemon.cli", "summit", "--replay",
                          str(recording), "--dry-run", "--json"], capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr
    replayed = json.loads(dry.stdout)["tasks"]
    assert [(t["id"], t["source"], t["release"], t["state"]) for t in replayed] == sorted(
        (t["id"], t["source"], t["release"], t["state"]) for t in tasks)
    handled = await _handled(farm)
    done = subprocess.run([sys.executable, "-m", "daemon.cli", "events", "replay",
                           "--journal", str(farm.state / "journal" / "journal.sqlite"),
                           "--to", "live", "--broker", farm.bus_url],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    replayed_count = re.search(r"replayed (\d+) event\(s\)", done.stderr)
    # Every recorded event, and the builders' reports recorded since.
    assert replayed_count and int(replayed_count.group(1)) >= len(before), done.stderr
    await _until_handled(farm, handled, before)
    await asyncio.sleep(2)  # what a service published in answer reaches the journal
    assert await farm.tasks() == tasks
    assert farm.index() == index
    # Builders keep reporting themselves; nothing else was published because of the replay.
    def decisions(journal: list[dict[str, Any]]) -> list[str]:
        return [e["id"] for e in journal if e["type"] != "builder-seen"]

    assert decisions(farm.journal()) == decisions(before)


#: Each service's queue, to know when it has taken every replayed event.
QUEUES = {"summit": SUMMIT, "journal": JOURNAL, "vessel": VESSEL,
          "builder1": builder_subscription("builder1"),
          "builder2": builder_subscription("builder2")}


async def _handled(farm: ProcessFarm) -> dict[str, int]:
    """Events each service has taken off its queue (handled or dead-lettered), builders'
    reports aside (they keep coming)."""
    out = {}
    async with aiohttp.ClientSession() as session:
        for name, subscription in QUEUES.items():
            url = f"http://127.0.0.1:{farm.health_ports[name]}/metrics"
            async with session.get(url) as response:
                text = await response.text()
            out[name] = sum(int(float(line.rsplit(" ", 1)[1])) for line in text.splitlines()
                            if line.startswith(("cairn_events_handled_total{",
                                                "cairn_events_dead_lettered_total{"))
                            and f'queue="{subscription.queue}"' in line
                            and 'type="builder-seen"' not in line)
    return out


async def _until_handled(farm: ProcessFarm, before: dict[str, int],
                         replayed: list[dict[str, Any]], timeout: float = 120) -> None:
    """Until every service has taken the replayed events its queue is bound to."""
    def bound(subscription: Subscription, event: dict[str, Any]) -> bool:
        return event["type"] != "builder-seen" and any(
            b in (f"{event['type']}.*", f"{event['type']}.{event['subject']}")
            for b in subscription.bindings)

    expected = {name: before[name] + sum(bound(sub, e) for e in replayed)
                for name, sub in QUEUES.items()}
    deadline = time.monotonic() + timeout
    while (now := await _handled(farm)) and any(now[n] < expected[n] for n in expected):
        assert time.monotonic() < deadline, f"replayed events not all taken: {now} {expected}"
        await asyncio.sleep(0.3)


METRICS = {
    "summit": ["cairn_tasks{", "cairn_queue_depth{", "cairn_builders_online",
               "cairn_events_handled_total{", "cairn_event_publish_seconds_bucket{"],
    "vessel": ["cairn_import_duration_seconds_bucket{", "cairn_events_handled_total{",
               "cairn_queue_depth{"],
    "builder1": ["cairn_build_duration_seconds_bucket{", "cairn_events_handled_total{"],
    "journal": ["cairn_events_handled_total{", "cairn_queue_depth{"],
}


async def _every_service_serves_health_and_metrics(farm: ProcessFarm) -> None:
    async with aiohttp.ClientSession() as session:
        for name, series in METRICS.items():
            base = f"http://127.0.0.1:{farm.health_ports[name]}"
            async with session.get(f"{base}/healthz") as health:
                assert health.status == 200, (name, await health.text())
            async with session.get(f"{base}/metrics") as response:
                assert response.status == 200
                text = await response.text()
            for prefix in series:
                assert prefix in text, f"{name} has no {prefix}"
        async with session.get(f"{farm.summit_url}/metrics") as response:
            assert 'cairn_tasks{state="completed"} 8.0' in await response.text()
