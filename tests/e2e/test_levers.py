"""Operators' levers on a farm of real processes (RabbitMQ, Mosquitto, summit, vessel,
journal, avalanche builders): slots, needs, priority, pause and drain, all through the API.

Each build only sleeps, so what is measured is scheduling: which task starts where and
when, read back from summit's timeline (``/api/v1/events``: a task turns ``building`` when
summit admits its builder's claim, ``publishing`` when the build's report arrives)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

from tests.e2e.farm import ProcessFarm, all_final
from tests.support.mosquitto import MosquittoBroker

pytestmark = [pytest.mark.rabbitmq, pytest.mark.mqtt, pytest.mark.slow,
              pytest.mark.timeout(300)]

T = TypeVar("T")
BUSY = {"building", "publishing"}


def sleeper(name: str, seconds: float) -> str:
    return f"""name        : {name}
version     : 1.0.0
release     : 1
summary     : Takes {seconds} s
license     : MPL-2.0
build       : |
    sleep {seconds}
install     : |
    mkdir -p $installdir/usr/share/{name} && echo done > $installdir/usr/share/{name}/done
"""


def recipes(path: Path, sleeps: dict[str, float]) -> Path:
    for name, seconds in sleeps.items():
        (path / name).mkdir(parents=True)
        (path / name / "stone.yaml").write_text(sleeper(name, seconds))
    for args in (["init", "-q", "-b", "main"], ["add", "-A"],
                 ["-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-q", "-m",
                  "recipes"]):
        subprocess.run(["git", "-C", str(path), *args], check=True, capture_output=True)
    return path


@pytest.fixture
async def make_farm(tmp_path: Path, private_rabbitmq_url: str,
                    private_mosquitto: MosquittoBroker
                    ) -> AsyncIterator[Callable[[dict[str, float]], ProcessFarm]]:
    farms: list[ProcessFarm] = []

    def make(sleeps: dict[str, float]) -> ProcessFarm:
        farm = ProcessFarm(private_rabbitmq_url, recipes(tmp_path / "recipes", sleeps),
                           tmp_path / "state", mqtt_url=private_mosquitto.url)
        farms.append(farm)
        return farm

    try:
        yield make
    finally:
        for farm in farms:
            farm.stop_all()


async def until(farm: ProcessFarm, what: str, probe: Callable[[], Awaitable[T | None]],
                timeout: float = 120) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = await probe()
        except OSError:
            found = None
        if found:
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"no {what} within {timeout} s\n{farm.logs()}")


async def by_source(farm: ProcessFarm) -> dict[str, dict[str, Any]]:
    return {t["source"]: t for t in await farm.tasks()}


async def timeline(farm: ProcessFarm) -> list[dict[str, Any]]:
    """Every timeline entry, oldest first."""
    _, page = await farm.call("GET", "/api/v1/events?limit=500", token=None)
    return list(reversed(page["events"]))


def runs(entries: list[dict[str, Any]]) -> dict[int, tuple[float, float]]:
    """Task id → (admitted, reported) of its build."""
    start: dict[int, float] = {}
    out: dict[int, tuple[float, float]] = {}
    for entry in entries:
        if entry["type"] == "building":
            start[entry["task_id"]] = entry["time"]
        elif entry["type"] in ("publishing", "failed", "cancelled") and \
                entry["task_id"] in start:
            out[entry["task_id"]] = (start.pop(entry["task_id"]), entry["time"])
    return out


def most_at_once(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    level = peak = 0
    for _, step in edges:  # at equal times an end (-1) sorts before a start
        level += step
        peak = max(peak, level)
    return peak


def started_order(entries: list[dict[str, Any]]) -> list[int]:
    return [e["task_id"] for e in entries if e["type"] == "building"]


def assigned_to(entries: list[dict[str, Any]], builder: str) -> list[dict[str, Any]]:
    return [e for e in entries if e["summary"].startswith(f"assigned to {builder} ")]


async def test_a_two_slot_builder_runs_two_at_once_never_three(
        make_farm: Callable[[dict[str, float]], ProcessFarm]) -> None:
    farm = make_farm({f"s{i}": 3 for i in range(1, 6)})
    farm.start_services()
    farm.start_builder("pair", CAIRN_AVALANCHE_SLOTS="2")
    tasks = await farm.wait_tasks(all_final(5), timeout=180)
    assert {t["state"] for t in tasks} == {"completed"}, tasks
    spans = list(runs(await timeline(farm)).values())
    assert len(spans) == 5
    assert most_at_once(spans) == 2, spans


async def test_a_task_needing_big_waits_with_its_reason_until_a_big_builder_joins(
        make_farm: Callable[[dict[str, float]], ProcessFarm]) -> None:
    farm = make_farm({"huge": 1, "small1": 1, "small2": 1})
    farm.start_services(CAIRN_SUMMIT_CONSTRAINTS=json.dumps(
        [{"pattern": "huge*", "features": ["big"]}]))
    farm.start_builder("small", CAIRN_AVALANCHE_FEATURES='["fast"]')

    async def smalls_done() -> dict[str, dict[str, Any]] | None:
        tasks = await by_source(farm)
        done = all(tasks.get(s, {}).get("state") == "completed" for s in ("small1", "small2"))
        return tasks if done else None

    tasks = await until(farm, "small builds", smalls_done)
    huge = tasks["huge"]
    assert (huge["state"], huge["builder"]) == ("ready", None)
    assert huge["waiting"] == "no builder with feature big for x86_64"
    _, detail = await farm.call("GET", f"/api/v1/tasks/{huge['id']}", token=None)
    assert detail["waiting"] == huge["waiting"]
    waiting = await metrics(farm)
    assert 'cairn_tasks_waiting{reason="builder"} 1.0' in waiting
    assert 'cairn_tasks_waiting{reason="slot"} 0.0' in waiting
    assert "cairn_builders_busy_ratio 0.0" in waiting
    farm.start_builder("large", CAIRN_AVALANCHE_FEATURES='["big"]')
    tasks = await farm.wait_tasks(all_final(3), timeout=120)
    done = {t["source"]: t for t in tasks}["huge"]
    assert (done["state"], done["builder"]) == ("completed", "large")
    after = await metrics(farm)
    assert 'cairn_dispatch_wait_seconds_count{constraint="big"} 1.0' in after
    assert 'cairn_dispatch_wait_seconds_count{constraint="any"} 2.0' in after
    assert "cairn_dispatch_decisions_total 3.0" in after
    assert 'cairn_tasks_waiting{reason="builder"} 0.0' in after
    journal = farm.journal()
    joined = min(_seconds(e) for e in journal
                 if e["type"] == "builder-seen" and e["data"]["builder"] == "large")
    given = min(_seconds(e) for e in journal
                if e["type"] == "task-ready" and e["data"]["task_id"] == huge["id"])
    print(f"figure: huge assigned {given - joined:.3f} s after the big builder's first report")


async def metrics(farm: ProcessFarm) -> str:
    async with aiohttp.ClientSession() as session, session.get(
            farm.summit_url + "/metrics") as response:
        return await response.text()


def _seconds(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(event["time"]).replace("Z", "+00:00")).timestamp()


async def test_raising_the_last_ready_task_makes_it_the_next_to_start(
        make_farm: Callable[[dict[str, float]], ProcessFarm]) -> None:
    farm = make_farm({"busy": 6, **{f"q{i:02}": 0.5 for i in range(10)}})
    farm.start_services()
    tasks = await until(farm, "11 ready tasks", lambda: _ready(farm, 11))
    status, raised = await farm.call("POST", f"/api/v1/tasks/{tasks['busy']['id']}/priority",
                                     {"priority": 100})
    assert status == 200 and raised["priority"] == 100
    farm.start_builder("only")
    await until(farm, "busy building", lambda: _state(farm, "busy", "building"))
    waiting = sorted(t["id"] for t in (await by_source(farm)).values()
                     if t["state"] == "ready")
    assert len(waiting) == 10
    last = waiting[-1]
    status, raised = await farm.call("POST", f"/api/v1/tasks/{last}/priority",
                                     {"priority": 5})
    assert status == 200 and raised["priority"] == 5
    await farm.wait_tasks(all_final(11), timeout=180)
    order = started_order(await timeline(farm))
    assert order[:2] == [tasks["busy"]["id"], last], order
    status, refused = await farm.call("POST", f"/api/v1/tasks/{last}/priority",
                                      {"priority": 1})
    assert status == 409 and "not yet building" in refused["error"]
    status, _ = await farm.call("POST", f"/api/v1/tasks/{last}/priority", {"priority": 1},
                                token=None)
    assert status == 401


async def test_a_raised_task_takes_the_slot_of_an_assignment_its_builder_has_not_started(
        make_farm: Callable[[dict[str, float]], ProcessFarm], tmp_path: Path) -> None:
    """A task already assigned (``task-ready`` sent) whose builder has not claimed it yet is
    not started: raising another task's priority withdraws that assignment, the raised task
    takes the slot, and the withdrawn task is built later, once."""
    farm = make_farm({f"w{i}": 0.5 for i in range(4)})
    farm.start_services()
    tasks = await until(farm, "4 ready tasks", lambda: _ready(farm, 4))
    status, _ = await farm.call("POST", "/api/v1/dispatch/pause")
    assert status == 200
    # A long heartbeat: summit must not lose the stopped builder while the test acts.
    farm.start_builder("only", CAIRN_AVALANCHE_HEARTBEAT_S="30")
    await until(farm, "the builder online", lambda: _builder_online(farm, "only"))
    builder = farm.processes["only"]
    builder.send_signal(signal.SIGSTOP)  # it takes the next message only when continued
    try:
        status, _ = await farm.call("POST", "/api/v1/dispatch/resume")
        assert status == 200
        first = await until(farm, "an assignment", lambda: _assigned(farm, "only"))
        last = max((t for t in tasks.values() if t["id"] != first["id"]),
                   key=lambda t: t["id"])
        status, _ = await farm.call("POST", f"/api/v1/tasks/{last['id']}/priority",
                                    {"priority": 5})
        assert status == 200
        now = await by_source(farm)
        assert (now[last["source"]]["builder"], now[last["source"]]["state"]) == \
            ("only", "ready")
        withdrawn = now[first["source"]]
        assert (withdrawn["builder"], withdrawn["attempt"], withdrawn["withdrawn"]) == \
            (None, 2, 1), withdrawn
    finally:
        builder.send_signal(signal.SIGCONT)
    done = await farm.wait_tasks(all_final(4), timeout=120)
    assert {t["state"] for t in done} == {"completed"}, done
    entries = await timeline(farm)
    assert started_order(entries)[0] == last["id"], started_order(entries)
    # The withdrawn attempt never ran: one build of the task, its next attempt.
    builds = [e for e in farm.journal() if e["type"] == "build-done"
              and e["data"]["task_id"] == first["id"]]
    assert len(builds) == 1 and builds[0]["data"]["attempt"] >= 2, builds
    assert any("withdrawn before it started" in e["summary"] for e in entries
               if e["task_id"] == first["id"])
    # The recorded run, replayed, counts the withdrawn attempt as summit did.
    recording = tmp_path / "run.jsonl"
    recording.write_text("".join(json.dumps(e) + "\n" for e in farm.journal()))
    dry = subprocess.run([sys.executable, "-m", "daemon.cli", "summit", "--replay",
                          str(recording), "--dry-run", "--json"], capture_output=True,
                         text=True, check=False)
    assert dry.returncode == 0, dry.stderr
    assert [(t["id"], t["state"], t["attempt"], t["withdrawn"])
            for t in json.loads(dry.stdout)["tasks"]] == sorted(
        (t["id"], t["state"], t["attempt"], t["withdrawn"]) for t in done)


async def _builder_online(farm: ProcessFarm, name: str) -> bool:
    """Whether summit heard from the builder (enabling one it does not know is a 404)."""
    status, _ = await farm.call("POST", f"/api/v1/builders/{name}/enable")
    return status == 200


async def _assigned(farm: ProcessFarm, builder: str) -> dict[str, Any] | None:
    found = [t for t in await farm.tasks() if t["state"] == "ready" and t["builder"] == builder]
    return found[0] if found else None


async def _ready(farm: ProcessFarm, count: int) -> dict[str, dict[str, Any]] | None:
    tasks = await by_source(farm)
    return tasks if sum(t["state"] == "ready" for t in tasks.values()) == count else None


async def _state(farm: ProcessFarm, source: str, state: str) -> dict[str, Any] | None:
    task = (await by_source(farm)).get(source)
    return task if task is not None and task["state"] == state else None


async def test_pause_starts_nothing_new_running_builds_finish_resume_drains_the_queue(
        make_farm: Callable[[dict[str, float]], ProcessFarm]) -> None:
    farm = make_farm({f"p{i}": 3 for i in range(1, 5)})
    farm.start_services()
    farm.start_builder("only")

    async def one_building() -> dict[str, Any] | None:
        found = [t for t in await farm.tasks() if t["state"] == "building"]
        return found[0] if found else None

    first = await until(farm, "a build", one_building)
    status, levers = await farm.call("POST", "/api/v1/dispatch/pause")
    assert status == 200 and levers["paused"] is True
    await until(farm, "the running build finished",
                lambda: _state(farm, first["source"], "completed"))
    await asyncio.sleep(3)  # a free builder and a ready queue: still nothing may start
    tasks = await farm.tasks()
    waiting = [t for t in tasks if t["id"] != first["id"]]
    assert {(t["state"], t["builder"]) for t in waiting} == {("ready", None)}, tasks
    assert {t["waiting"] for t in waiting} == {"dispatch is paused for the whole farm"}
    assert started_order(await timeline(farm)) == [first["id"]]
    retried = await _bulk_by_cli(farm, waiting)
    status, levers = await farm.call("POST", "/api/v1/dispatch/resume")
    assert status == 200 and levers["paused"] is False
    tasks = await farm.wait_tasks(all_final(5), timeout=120)
    assert sorted((t["source"], t["state"]) for t in tasks) == sorted(
        [*((t["source"], "completed") for t in [first, *waiting]), (retried, "cancelled")])


async def cairn(farm: ProcessFarm, *args: str) -> str:
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "daemon.cli", *args, "--summit",
                         farm.summit_url, "--token", "test-token"],
        capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def _bulk_by_cli(farm: ProcessFarm, waiting: list[dict[str, Any]]) -> str:
    """While paused: a dry run lists and changes nothing; one task is cancelled by filter
    and retried by filter. Returns the source cancelled and retried."""
    listed = await cairn(farm, "tasks", "cancel-all", "--state", "ready", "--source", "p*")
    assert listed.startswith(f"would cancel {len(waiting)} task(s)"), listed
    assert {t["state"] for t in await farm.tasks()} == {"ready", "completed"}
    last = max(waiting, key=lambda t: t["id"])
    done = await cairn(farm, "tasks", "cancel-all", "--source", last["source"], "--yes")
    assert done.startswith("cancel: 1 done, 0 skipped"), done
    _, task = await farm.call("GET", f"/api/v1/tasks/{last['id']}", token=None)
    assert task["state"] == "cancelled"
    done = await cairn(farm, "tasks", "retry-all", "--state", "cancelled", "--yes")
    assert done.startswith("retry: 1 done, 0 skipped"), done
    return str(last["source"])


async def test_a_drained_builder_finishes_takes_nothing_while_others_work_then_takes_again(
        make_farm: Callable[[dict[str, float]], ProcessFarm]) -> None:
    farm = make_farm({f"d{i}": 3 for i in range(1, 9)})
    farm.start_services()
    farm.start_builder("one")
    farm.start_builder("two")

    async def building_on(builder: str) -> dict[str, Any] | None:
        found = [t for t in await farm.tasks()
                 if t["state"] == "building" and t["builder"] == builder]
        return found[0] if found else None

    held = await until(farm, "a build on one", lambda: building_on("one"))
    status, levers = await farm.call("POST", "/api/v1/builders/one/drain")
    assert status == 200 and levers["drained"] == ["one"]
    drained_at = time.time()

    async def shown_draining() -> bool:
        _, data = await farm.call("GET", "/api/v1/builders", token=None)
        return any(b["builder"] == "one" and b["state"] == "draining"
                   for b in data["builders"])

    await until(farm, "one shown draining", shown_draining)
    await until(farm, "one's build finished", lambda: _state(farm, held["source"], "completed"))

    async def two_took_more() -> bool:
        entries = assigned_to(await timeline(farm), "two")
        return len([e for e in entries if e["time"] > drained_at]) >= 2

    await until(farm, "two taking work while one is drained", two_took_more)
    assert [e["task_id"] for e in assigned_to(await timeline(farm), "one")] == [held["id"]]
    status, levers = await farm.call("POST", "/api/v1/builders/one/enable")
    assert status == 200 and levers["drained"] == []
    tasks = await farm.wait_tasks(all_final(8), timeout=120)
    assert {t["state"] for t in tasks} == {"completed"}
    assert len(assigned_to(await timeline(farm), "one")) > 1, "enabled, one took no work"
