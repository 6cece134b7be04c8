"""Metrics scraped over real HTTP after real traffic through the bus.

Events are published and consumed through the embedded broker (and once through RabbitMQ);
``GET /metrics`` is fetched from an aiohttp server on 127.0.0.1 and parsed with
prometheus-client's own parser, so what is checked is what Prometheus would read.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter as Tally
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from daemon.metrics import ServiceMetrics
from events.amqp import AmqpBus
from events.bus import Bus, Subscription
from events.envelope import Event, new_event
from events.errors import RejectEvent, TransientError, UnroutableEvent
from events.memory import MemoryBroker, MemoryBus
from events.names import binding
from events.payloads import CommitSeen, TaskCancelled

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def commit(repository: str) -> Event[Any]:
    return new_event(
        CommitSeen(
            repository=repository,
            url=f"https://git.example/{repository}",
            branch="main",
            new_commit="a" * 40,
        ),
        source="test",
    )


def cancel(task_id: int) -> Event[Any]:
    return new_event(TaskCancelled(task_id=task_id, builder="b1", arch="x86_64"),
                     source="test")


@asynccontextmanager
async def serving(*services: ServiceMetrics) -> AsyncIterator[list[str]]:
    """Each service's ``/metrics`` on its own application and port, as the daemons do."""
    runners = []
    urls = []
    try:
        for service in services:
            app = web.Application()
            service.mount(app)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            runners.append(runner)
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            urls.append(f"http://127.0.0.1:{runner.addresses[0][1]}/metrics")
        yield urls
    finally:
        for runner in runners:
            await runner.cleanup()


async def scrape(url: str) -> Samples:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        text = await response.text()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(1000):  # up to ~10 s
        if await check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not reached within 10 s: {what}")


async def test_bus_traffic_appears_in_metrics(unique: str) -> None:
    metrics = ServiceMetrics("summit")
    bus = MemoryBus()
    metrics.attach(bus)
    queue, idle = f"{unique}.work", f"{unique}.idle"
    calls: Tally[str] = Tally()

    async def handler(event: Event[Any]) -> None:
        repository = event.data.repository
        calls[repository] += 1
        if repository == "flaky" and calls[repository] < 3:
            raise TransientError("database is locked")
        if repository == "poison":
            raise RejectEvent("this recipe can never be planned")

    async with bus:
        await bus.subscribe(
            Subscription(queue, (binding("commit-seen"),), retry_base_delay=0.001), handler
        )
        for repository in ("fine", "flaky", "poison"):
            await bus.publish(commit(repository))
        bus.broker.route(b"this is not an event", "commit-seen.garbage")
        with pytest.raises(UnroutableEvent):
            await bus.publish(cancel(1))
        await bus.declare(Subscription(idle, (binding("task-cancelled"),)))
        for task in (2, 3):
            await bus.publish(cancel(task))

        async def settled() -> bool:
            return len(await bus.dead_letters(queue)) == 2 and calls["flaky"] == 3

        await eventually(settled, "the poison and the garbage were dead-lettered")
        metrics.watch_queues(bus, [idle, f"{unique}.never-declared"])

        async with serving(metrics) as (url,):
            samples = await scrape(url)

    assert value(samples, "cairn_events_handled_total", type="commit-seen", queue=queue) == 2
    assert value(samples, "cairn_events_retried_total", type="commit-seen", queue=queue) == 2
    assert value(samples, "cairn_events_dead_lettered_total", type="commit-seen", queue=queue) == 1
    assert value(samples, "cairn_events_dead_lettered_total", type="invalid", queue=queue) == 1
    assert value(samples, "cairn_event_publish_seconds_count", type="commit-seen") == 3
    assert value(samples, "cairn_event_publish_seconds_count", type="task-cancelled") == 2
    assert (value(samples, "cairn_event_publish_seconds_sum", type="commit-seen") or 0) > 0
    assert value(samples, "cairn_event_publish_seconds_bucket", type="commit-seen", le="+Inf") == 3
    assert value(samples, "cairn_event_publish_failures_total", type="task-cancelled") == 1
    assert value(samples, "cairn_queue_depth", queue=idle) == 2
    assert value(samples, "cairn_queue_depth", queue=f"{unique}.never-declared") is None
    assert (
        value(samples, "cairn_service_info", service="summit", version=_version_label(samples)) == 1
    )


def _version_label(samples: Samples) -> str:
    for name, labels in samples:
        if name == "cairn_service_info":
            return dict(labels)["version"]
    raise AssertionError("cairn_service_info is missing")


async def test_state_the_services_report_and_refresh_at_scrape_time() -> None:
    metrics = ServiceMetrics("summit", process=False)
    counts = {"ready": 3, "building": 1, "failed": 2}
    builders = ["b1", "b2"]

    async def from_store() -> None:  # what summit does: read its store at each scrape
        metrics.set_tasks(dict(counts), states=("new", "completed"))
        metrics.set_builders_online(len(builders))

    async def broken() -> None:
        raise RuntimeError("database is locked")

    metrics.add_refresher(from_store)
    metrics.add_refresher(broken)
    for outcome, seconds in (("success", 42.0), ("success", 700.0), ("failure", 3.0)):
        metrics.observe_build(outcome, seconds)
    metrics.observe_import("published", 0.3)
    metrics.observe_import("refused", 0.07)

    async with serving(metrics) as (url,):
        first = await scrape(url)
        counts.pop("failed")
        counts["completed"] = 2
        builders.pop()
        second = await scrape(url)

    assert {
        s: value(first, "cairn_tasks", state=s)
        for s in ("new", "ready", "building", "failed", "completed")
    } == {"new": 0, "ready": 3, "building": 1, "failed": 2, "completed": 0}
    assert value(second, "cairn_tasks", state="failed") == 0  # not a stale 2
    assert value(second, "cairn_tasks", state="completed") == 2
    assert value(first, "cairn_builders_online") == 2
    assert value(second, "cairn_builders_online") == 1
    assert value(first, "cairn_build_duration_seconds_count", outcome="success") == 2
    assert value(first, "cairn_build_duration_seconds_sum", outcome="success") == 742
    assert value(first, "cairn_build_duration_seconds_bucket", outcome="success", le="60.0") == 1
    assert value(first, "cairn_build_duration_seconds_bucket", outcome="failure", le="5.0") == 1
    assert value(first, "cairn_import_duration_seconds_count", outcome="published") == 1
    assert value(first, "cairn_import_duration_seconds_count", outcome="refused") == 1
    assert not any(name.startswith("process_") for name, _ in first)


async def test_embedded_services_keep_their_own_series(unique: str) -> None:
    """``cairn up``: two services, two buses on one broker, one process, two endpoints."""
    broker = MemoryBroker()
    summit, vessel = ServiceMetrics("summit"), ServiceMetrics("vessel")
    summit_bus, vessel_bus = MemoryBus(broker), MemoryBus(broker)
    summit.attach(summit_bus)
    vessel.attach(vessel_bus)
    seen = asyncio.Event()

    async def handle(event: Event[Any]) -> None:
        seen.set()

    async with summit_bus, vessel_bus:
        await vessel_bus.subscribe(
            Subscription(f"{unique}.vessel", (binding("commit-seen"),)), handle
        )
        await summit_bus.publish(commit("core"))
        await asyncio.wait_for(seen.wait(), 10)
        async with serving(summit, vessel) as (summit_url, vessel_url):
            summit_samples, vessel_samples = await scrape(summit_url), await scrape(vessel_url)

    queue = f"{unique}.vessel"
    assert value(summit_samples, "cairn_event_publish_seconds_count", type="commit-seen") == 1
    assert value(vessel_samples, "cairn_event_publish_seconds_count", type="commit-seen") is None
    assert value(vessel_samples, "cairn_events_handled_total", type="commit-seen", queue=queue) == 1
    assert (
        value(summit_samples, "cairn_events_handled_total", type="commit-seen", queue=queue) is None
    )
    assert value(summit_samples, "process_cpu_seconds_total") is not None


@pytest.mark.rabbitmq
async def test_rabbitmq_bus_is_counted_too(rabbitmq_url: str, unique: str) -> None:
    metrics = ServiceMetrics("vessel", process=False)
    bus: Bus = AmqpBus(rabbitmq_url, name="metrics-test")
    metrics.attach(bus)
    seen = asyncio.Event()

    async def handle(event: Event[Any]) -> None:
        seen.set()

    subject = uuid.uuid4().hex
    async with bus:
        queue = f"{unique}.rabbit"
        await bus.subscribe(Subscription(queue, (binding("commit-seen", subject),)), handle)
        await bus.publish(
            new_event(
                CommitSeen(
                    repository=subject,
                    url="https://git.example/r",
                    branch="main",
                    new_commit="b" * 40,
                ),
                source="test",
                subject=subject,
            )
        )
        await asyncio.wait_for(seen.wait(), 10)
        await asyncio.sleep(0.05)  # the counter is bumped right after the handler returns
        metrics.watch_queues(bus, [queue])
        async with serving(metrics) as (url,):
            samples = await scrape(url)
    assert value(samples, "cairn_event_publish_seconds_count", type="commit-seen") == 1
    assert value(samples, "cairn_events_handled_total", type="commit-seen", queue=queue) == 1
    assert value(samples, "cairn_queue_depth", queue=queue) == 0


@pytest.fixture
def unique() -> str:
    return f"cairn.test.{uuid.uuid4().hex[:8]}"
