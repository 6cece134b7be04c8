"""Prometheus metrics every cairn service exposes at ``GET /metrics``.

One :class:`ServiceMetrics` per service, each with its **own** ``CollectorRegistry`` rather
than the process-global one or a single registry with a ``service`` label. Why:

* ``cairn up`` runs summit, vessel, builders and the journal in one process; each still
  serves its own ``/metrics`` that describes that service alone, exactly as when they run as
  separate daemons, so one scrape configuration fits both ways of running.
* the bus counters come from each service's own bus connection (its ``observer``, see
  :class:`events.bus.BusObserver`), so nothing process-wide decides which service an
  event belongs to;
* tests build as many as they like without "Duplicated timeseries" errors from the global
  registry.

Series (all prefixed ``cairn_``):

===================================  =========  =================  ============================
name                                 kind       labels             set by
===================================  =========  =================  ============================
``tasks``                            gauge      state              :meth:`set_tasks` (summit)
``queue_depth``                      gauge      queue              :meth:`watch_queues`
``build_duration_seconds``           histogram  outcome            :meth:`observe_build`
``events_handled_total``             counter    type, queue        the bus
``events_retried_total``             counter    type, queue        the bus
``events_dead_lettered_total``       counter    type, queue        the bus
``event_publish_seconds``            histogram  type               the bus (confirmed publishes)
``event_publish_failures_total``     counter    type               the bus
``import_duration_seconds``          histogram  outcome            :meth:`observe_import`
``builders_online``                  gauge                         :meth:`set_builders_online`
``dispatch_wait_seconds``            histogram  constraint         :meth:`observe_dispatch_wait`
``dispatch_decisions_total``         counter                       :meth:`dispatched` (summit)
``builders_busy_ratio``              gauge                         :meth:`set_scheduler`
``tasks_waiting``                    gauge      reason             :meth:`set_scheduler`
``service_info``                     info       service, version   at creation
===================================  =========  =================  ============================

Gauges that mirror state kept elsewhere (tasks, queue depth, builders) are best refreshed at
scrape time: register an async refresher with :meth:`add_refresher` and the ``/metrics``
handler runs it (bounded by a timeout) before rendering.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from importlib import metadata

import structlog
from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from events.bus import Bus, BusObserver
from events.errors import BusError

log = structlog.get_logger("cairn.metrics")

METRICS_PATH = "/metrics"
Refresher = Callable[[], Awaitable[None]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Builds take seconds (noop) to hours (a toolchain).
BUILD_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800)
#: A confirmed publish takes well under a millisecond (embedded) to seconds (a slow broker).
PUBLISH_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
#: A ready task waits for a builder: no time (a free slot) to hours (a busy farm).
WAIT_BUCKETS = (0.1, 0.5, 1, 5, 15, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 43200)
#: Why a ready task waits (``cairn_tasks_waiting``): only for a free slot, for a builder with
#: what it needs (or any builder of its arch), or because dispatch is paused.
WAIT_REASONS = ("slot", "builder", "paused")
#: An import downloads, verifies and publishes: tenths of seconds to minutes.
IMPORT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


def _version() -> str:
    try:
        return metadata.version("cairn")
    except metadata.PackageNotFoundError:
        return "unknown"


class ServiceMetrics(BusObserver):
    """The metrics of one service, in a registry of its own; also its bus's observer."""

    def __init__(
        self,
        service: str,
        *,
        registry: CollectorRegistry | None = None,
        process: bool = True,
        refresh_timeout: float = 2.0,
    ) -> None:
        self.service = service
        self.registry = registry if registry is not None else CollectorRegistry()
        self.refresh_timeout = refresh_timeout
        self._refreshers: list[Refresher] = []
        self._task_states: set[str] = set()
        self._depth_known: set[str] = set()
        self._handled: dict[tuple[str, str], Counter] = {}
        self._published: dict[str, Histogram] = {}
        r = self.registry
        Info("cairn_service", "The service behind this endpoint.", registry=r).info(
            {"service": service, "version": _version()}
        )
        self.tasks = Gauge("cairn_tasks", "Tasks by state.", ["state"], registry=r)
        self.queue_depth = Gauge(
            "cairn_queue_depth", "Messages ready in a broker queue.", ["queue"], registry=r
        )
        self.build_duration = Histogram(
            "cairn_build_duration_seconds",
            "Build durations by outcome.",
            ["outcome"],
            buckets=BUILD_BUCKETS,
            registry=r,
        )
        self.events_handled = Counter(
            "cairn_events_handled", "Events a handler accepted.", ["type", "queue"], registry=r
        )
        self.events_retried = Counter(
            "cairn_events_retried",
            "Handler failures retried after a back-off.",
            ["type", "queue"],
            registry=r,
        )
        self.events_dead_lettered = Counter(
            "cairn_events_dead_lettered",
            "Messages dead-lettered (type 'invalid': not an event).",
            ["type", "queue"],
            registry=r,
        )
        self.publish_latency = Histogram(
            "cairn_event_publish_seconds",
            "Time from publish to the broker's confirm.",
            ["type"],
            buckets=PUBLISH_BUCKETS,
            registry=r,
        )
        self.publish_failures = Counter(
            "cairn_event_publish_failures",
            "Publishes that raised (unroutable, timeout, connection).",
            ["type"],
            registry=r,
        )
        self.import_duration = Histogram(
            "cairn_import_duration_seconds",
            "Vessel import durations by outcome.",
            ["outcome"],
            buckets=IMPORT_BUCKETS,
            registry=r,
        )
        self.builders_online = Gauge(
            "cairn_builders_online", "Builders reporting online.", registry=r
        )
        self.dispatch_wait = Histogram(
            "cairn_dispatch_wait_seconds",
            "Time from ready to building, by what the task needs of a builder.",
            ["constraint"],
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.dispatch_decisions = Counter(
            "cairn_dispatch_decisions", "Tasks assigned to builders.", registry=r
        )
        self.builders_busy = Gauge(
            "cairn_builders_busy_ratio",
            "Slots held (assigned or building) over the slots of builders taking work.",
            registry=r,
        )
        self.tasks_waiting = Gauge(
            "cairn_tasks_waiting",
            "Ready tasks no builder has been given, by why they wait.",
            ["reason"],
            registry=r,
        )
        if process:
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
            GCCollector(registry=r)

    # -- the bus (events.bus.BusObserver) ---------------------------------------------

    # handled and published run for every message: their labelled children are cached
    # (``labels()`` takes a lock and builds a key each time; this halves the cost).

    def handled(self, event_type: str, queue: str) -> None:
        child = self._handled.get((event_type, queue))
        if child is None:
            child = self._handled[event_type, queue] = self.events_handled.labels(event_type, queue)
        child.inc()

    def retried(self, event_type: str, queue: str) -> None:
        self.events_retried.labels(event_type, queue).inc()

    def dead_lettered(self, event_type: str, queue: str) -> None:
        self.events_dead_lettered.labels(event_type, queue).inc()

    def published(self, event_type: str, seconds: float) -> None:
        child = self._published.get(event_type)
        if child is None:
            child = self._published[event_type] = self.publish_latency.labels(event_type)
        child.observe(seconds)

    def publish_failed(self, event_type: str) -> None:
        self.publish_failures.labels(event_type).inc()

    def attach(self, bus: Bus) -> None:
        """Count ``bus``'s verdicts and publishes here (before or after it subscribed)."""
        bus.observe(self)

    # -- what services report ----------------------------------------------------------

    def observe_build(self, outcome: str, seconds: float) -> None:
        self.build_duration.labels(outcome).observe(seconds)

    def observe_import(self, outcome: str, seconds: float) -> None:
        self.import_duration.labels(outcome).observe(seconds)

    def set_tasks(self, counts: Mapping[str, int], states: Iterable[str] = ()) -> None:
        """Tasks per state; a state seen before (or listed in ``states``) and absent from
        ``counts`` drops to 0 rather than keeping a stale number."""
        self._task_states.update(states, counts)
        for state in self._task_states:
            self.tasks.labels(state).set(counts.get(state, 0))

    def set_builders_online(self, count: int) -> None:
        self.builders_online.set(count)

    def observe_dispatch_wait(self, seconds: float, constraint: str) -> None:
        self.dispatch_wait.labels(constraint).observe(seconds)

    def dispatched(self, count: int) -> None:
        self.dispatch_decisions.inc(count)

    def set_scheduler(self, busy: int, slots: int, waiting: Mapping[str, int]) -> None:
        """The busy ratio (0 without slots) and ready tasks waiting per reason."""
        self.builders_busy.set(busy / slots if slots else 0.0)
        for reason in WAIT_REASONS:
            self.tasks_waiting.labels(reason).set(waiting.get(reason, 0))

    def watch_queues(self, bus: Bus, queues: Iterable[str]) -> None:
        """Refresh ``cairn_queue_depth`` from the broker at every scrape. A queue the broker
        cannot report on has no sample (rather than a stale one)."""
        names = tuple(queues)

        async def refresh() -> None:
            for name in names:
                try:
                    depth = await bus.queue_depth(name)
                except BusError as exc:
                    log.info("metrics.queue_depth_unknown", queue=name, error=str(exc))
                    if name in self._depth_known:
                        self._depth_known.discard(name)
                        self.queue_depth.remove(name)
                else:
                    self.queue_depth.labels(name).set(depth)
                    self._depth_known.add(name)

        self.add_refresher(refresh)

    def add_refresher(self, refresh: Refresher) -> None:
        """Run ``refresh`` before every scrape (to copy state into gauges)."""
        self._refreshers.append(refresh)

    async def refresh(self) -> None:
        """Run every refresher concurrently, each bounded by ``refresh_timeout``; a failing
        one is logged and leaves its gauges as they were: a scrape never fails for it."""
        if self._refreshers:
            await asyncio.gather(*(self._run(r) for r in self._refreshers))

    async def _run(self, refresh: Refresher) -> None:
        try:
            async with asyncio.timeout(self.refresh_timeout):
                await refresh()
        except Exception as exc:
            log.warning("metrics.refresh_failed", service=self.service, error=repr(exc))

    def exposition(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)

    def mount(self, app: web.Application, path: str = METRICS_PATH) -> None:
        """Add ``GET path`` to an application the service already runs."""
        app.router.add_get(path, metrics_route(self.registry, self.refresh))


def metrics_route(registry: CollectorRegistry, refresh: Refresher | None = None) -> Handler:
    """An aiohttp handler serving ``registry`` in the text exposition format, after running
    ``refresh`` (if given)."""

    async def handle(request: web.Request) -> web.Response:
        if refresh is not None:
            await refresh()
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    return handle
