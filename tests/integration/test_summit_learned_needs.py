"""Summit learns what a source needs from its builds: after a build of diamond-a reports a
peak of 3 GiB (of memory, or of disk), its next attempt waits — saying so — while the only
builder declares 1 GiB, and goes to a builder declaring 4 GiB the moment that one reports
in. On real RabbitMQ, with the test playing the builders."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from daemon.summit import queries
from events import payloads as p
from events.amqp import AmqpBus
from events.bus import Bus
from events.envelope import new_event
from events.testing import captured_events
from events.topology import JOURNAL, VESSEL, builder
from tests.integration.test_summit_service import BUILDER, _claim, _done, _ready, _summit

pytestmark = [pytest.mark.rabbitmq]
LARGE = "b2"


async def _online(bus: Bus, name: str, memory_mb: int | None = None,
                  disk_mb: int | None = None) -> None:
    await bus.publish(new_event(p.BuilderSeen(
        builder=name, arch="x86_64", state=p.BuilderState.ONLINE, boot=f"boot-{name}",
        slots=4, interval_s=60.0, memory_mb=memory_mb, disk_mb=disk_mb), source="test"))


def _measured(done: p.BuildDone, resource: str) -> p.BuildDone:
    """``done`` reporting a 3 GiB peak of ``resource``: memory (``build-done`` v2's usage)
    or disk (v3's)."""
    if resource == "memory":
        return p.BuildDone(**{**{f: getattr(done, f) for f in done.__struct_fields__},
                              "usage": p.Usage(max_rss_kb=3 * 1024 * 1024)})
    return p.BuildDoneV3(**{f: getattr(done, f) for f in done.__struct_fields__
                            if f != "usage"}, usage=p.UsageV3(disk_bytes=3 * 2**30))


@pytest.mark.parametrize(("resource", "failure"), [
    ("memory", "killed by the OOM killer"), ("disk", "No space left on device")])
async def test_a_measured_peak_keeps_the_next_attempt_off_smaller_builders(
        tmp_path: Path, private_rabbitmq_url: str, resource: str, failure: str) -> None:
    declared = f"{resource}_mb"
    async with AmqpBus(private_rabbitmq_url, name="test") as bus:
        for subscription in (VESSEL, JOURNAL, builder(BUILDER), builder(LARGE)):
            await bus.declare(subscription)
        async with captured_events(bus, "task-ready", "build-admitted") as seen:
            summit = await _summit(tmp_path, private_rabbitmq_url)
            try:
                await _online(bus, BUILDER, **{declared: 1024})
                await seen.wait_for("task-ready", count=2, timeout=20)
                diamond = _ready(seen)["diamond-a"]
                await bus.publish(new_event(_claim(diamond), source="test"))
                await seen.wait_for("build-admitted", count=1, timeout=20)
                done = _measured(_done(diamond, p.Outcome.INFRASTRUCTURE, failure), resource)
                await bus.publish(new_event(done, source="test"))
                service = summit.service
                assert service is not None
                scheduler = service.scheduler

                async def waiting() -> str | None:
                    task = scheduler.task(diamond.task_id)
                    if task is None or task.attempt != 2:
                        return None
                    return scheduler.waiting_reason(task)

                why = await _poll(waiting)
                assert why == f"no builder with 3072 MB {resource} for x86_64"
                if resource == "disk":
                    (build,) = await queries.source_history(scheduler.db, "diamond-a")
                    assert build["disk_bytes"] == 3 * 2**30  # the history shows it too
                await _online(bus, LARGE, **{declared: 4096})
                again = await seen.wait_for("task-ready", count=3, timeout=60)
                assert (again[-1].data.task_id, again[-1].data.attempt,
                        again[-1].data.builder) == (diamond.task_id, 2, LARGE)
            finally:
                await summit.stop(5)


async def _poll(probe: Callable[[], Awaitable[str | None]], timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = await probe()
        if found:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError("the task never waited for a bigger builder")
