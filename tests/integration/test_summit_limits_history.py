"""Summit on real RabbitMQ, the test playing the builder: each task-ready carries the limits
summit's configuration gives its source (repository defaults, per-source overrides); a build
that ends on a limit ends the task with that outcome, shown as such, and is not retried; every
report's usage goes into the source's history, which the API and the task page show."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from daemon.summit.daemon import (
    LimitSection,
    SummitDaemon,
)
from events import payloads as p
from events.amqp import AmqpBus
from events.envelope import new_event
from events.testing import captured_events
from tests.integration.test_summit_service import (
    _builder_online,
    _claim,
    _done,
    _ready,
    _settle,
    bus,
    pytestmark,
)
from tests.support.summit import start_summit

__all__ = ["bus", "pytestmark"]

LIMITS = [
    LimitSection(pattern="diamond-*", output_bytes=5_000_000, log_overflow=p.LogOverflow.TRUNCATE,
                 log_bytes=2_000_000),
    LimitSection(repository="recipes", silence_s=600, log_bytes=1_000_000, timeout_s=7200),
    LimitSection(repository="elsewhere", silence_s=1),
]


async def _summit(tmp_path: Path, url: str, backoff_s: float = 10.0) -> SummitDaemon:
    return await start_summit(tmp_path, url, limits=LIMITS, retry_backoff_s=backoff_s)


async def _get(url: str) -> Any:
    async with aiohttp.ClientSession() as session, session.get(url) as answer:
        assert answer.status == 200, await answer.text()
        return await answer.json()


async def test_limits_travel_in_task_ready_and_outcomes_and_usage_are_kept(
        tmp_path: Path, bus: AmqpBus, private_rabbitmq_url: str) -> None:
    async with captured_events(bus, "task-ready", "build-admitted") as seen:
        summit = await _summit(tmp_path, private_rabbitmq_url)
        try:
            await _builder_online(bus)
            await _settle(seen, 2)
            ready = _ready(seen)
            assert ready["libgreet"].limits == p.BuildLimits(
                timeout_s=7200, silence_s=600, log_bytes=1_000_000)
            # The override of diamond-* sources comes on top of the repository's defaults.
            assert ready["diamond-a"].limits == p.BuildLimits(
                timeout_s=7200, silence_s=600, log_bytes=2_000_000,
                log_overflow=p.LogOverflow.TRUNCATE, output_bytes=5_000_000)

            lib, diamond = ready["libgreet"], ready["diamond-a"]
            for task in (lib, diamond):
                await bus.publish(new_event(_claim(task), source="test"))
            await seen.wait_for("build-admitted", count=2, timeout=20)
            usage = p.Usage(cpu_s=12.5, max_rss_kb=204800, output_bytes=4096, log_bytes=900)
            silent = _done(diamond, p.Outcome.SILENT, "step build: the build printed nothing "
                           "for 600 s and was killed")
            await bus.publish(new_event(
                p.BuildDone(**{**_fields(silent), "usage": usage, "duration_s": 612.0}),
                source="test"))
            await _until_state(summit, diamond.task_id, "failed")
            await asyncio.sleep(1.0)  # a retry would be assigned by now: there is none
            assert [e.data.attempt for e in seen.of_type("task-ready")
                    if e.data.task_id == diamond.task_id] == [1]

            detail = await _get(f"{summit.url}/api/v1/tasks/{diamond.task_id}")
            assert detail["state"] == "failed" and detail["attempt"] == 1
            assert detail["failure"].startswith("silent: step build: the build printed nothing")
            (build,) = detail["builds"]
            assert build["outcome"] == "silent"
            assert (build["cpu_s"], build["max_rss_kb"], build["output_bytes"],
                    build["log_bytes"]) == (12.5, 204800, 4096, 900)
            history = await _get(f"{summit.url}/api/v1/sources/diamond-a/history")
            assert [(h["task_id"], h["outcome"], h["duration_s"], h["max_rss_kb"])
                    for h in history["builds"]] == [(diamond.task_id, "silent", 612.0, 204800)]
            assert detail["history"] == history["builds"]

            async with aiohttp.ClientSession() as session, \
                    session.get(f"{summit.url}/tasks/{diamond.task_id}") as page:
                html = await page.text()
            assert "History of diamond-a" in html
            assert "state-silent" in html and "200.0 MiB" in html and "10 min 12 s" in html
        finally:
            await summit.stop(5)


def _fields(done: p.BuildDone) -> dict[str, Any]:
    return {name: getattr(done, name) for name in done.__struct_fields__}


async def _until_state(summit: SummitDaemon, task_id: int, state: str) -> None:
    assert summit.service is not None
    for _ in range(200):
        task = summit.service.scheduler.task(task_id)
        if task is not None and str(task.state) == state:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"task {task_id} never became {state}")


async def test_an_infrastructure_failure_is_retried_once_its_back_off_is_over(
        tmp_path: Path, bus: AmqpBus, private_rabbitmq_url: str) -> None:
    async with captured_events(bus, "task-ready", "build-admitted") as seen:
        summit = await _summit(tmp_path, private_rabbitmq_url, backoff_s=5.0)
        try:
            await _builder_online(bus)
            await _settle(seen, 2)
            lib = _ready(seen)["libgreet"]
            # Every open task has an expected start and finish; the queue finishes with the
            # last of them, and dependents start when what they wait for is expected done.
            queue = await _get(f"{summit.url}/api/v1/queue")
            nodes = {n["id"]: n for n in queue["nodes"]}
            assert len(nodes) == 7
            assert all(n["expected_start"] <= n["expected_finish"] for n in nodes.values())
            for waiting, waited_for in ((e["from"], e["to"]) for e in queue["edges"]):
                assert nodes[waiting]["expected_start"] >= nodes[waited_for]["expected_finish"]
            # Read later, so from a later "now": builds that overran end later still.
            overview = await _get(f"{summit.url}/api/v1/overview")
            assert overview["expected_finish"] >= max(n["expected_finish"]
                                                      for n in nodes.values())
            async with aiohttp.ClientSession() as session, \
                    session.get(f"{summit.url}/queue") as page:
                assert "The queue is expected to finish at" in await page.text()
            await bus.publish(new_event(_claim(lib), source="test"))
            await seen.wait_for("build-admitted", timeout=20)
            await bus.publish(new_event(_done(lib, p.Outcome.INFRASTRUCTURE, "cannot download "
                                              "https://example.org/x: timed out"), source="test"))
            await _until_state(summit, lib.task_id, "ready")
            waiting = await _get(f"{summit.url}/api/v1/tasks/{lib.task_id}")
            assert waiting["attempt"] == 2 and waiting["builder"] is None
            assert waiting["retry_at"] is not None
            assert waiting["failure"].startswith("infrastructure: cannot download")
            async with aiohttp.ClientSession() as session, \
                    session.get(f"{summit.url}/tasks/{lib.task_id}") as page:
                html = await page.text()
            assert "attempt 2" in html and "not before" in html
            retries = [e for e in await seen.wait_for("task-ready", count=3, timeout=30)
                       if e.data.task_id == lib.task_id and e.data.attempt == 2]
            # The second attempt was assigned no earlier than the task said it would be.
            assert retries and retries[0].time.timestamp() >= waiting["retry_at"]
        finally:
            await summit.stop(5)
