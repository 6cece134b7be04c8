"""What the pages read from the planners, computed off the request path.

Why: with 50,000 tasks the expected start and finish of every open task (a simulation of
the farm), the build waves, the queue graph and the root causes take seconds to compute,
and every decision changes them. Computed per request, each page after a change took that
long, and the event loop answered nothing else meanwhile. So they are computed together
into one :class:`View`, by one background refresh at a time, from a snapshot of the
planners copied on the event loop (milliseconds: tasks are immutable), in a worker thread,
so the loop keeps answering while it runs.

A request is answered from the latest view. When that view is out of date (a decision was
stored, a lever or the fleet changed, or its estimates are older than
:data:`ESTIMATES_MAX_AGE`), a refresh starts;
requests arriving meanwhile share it, and changes during a refresh are taken by one more
refresh after it (coalescing), started no sooner than the last one took (at most half of a
core). Whether the request waits for it depends on how long the last refresh took: when it
was quick (a farm of hundreds of tasks: milliseconds), the request waits and always sees
its latest decision; when it was slow, the request is answered at once from the previous
view, and the page says how old it is (``as_of``).
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import structlog

from daemon.summit.estimates import Learned, expected_all
from daemon.summit.planning.collector import collector_paused
from daemon.summit.planning.eta import Eta
from daemon.summit.planning.fleet import Builder
from daemon.summit.planning.levers import Levers
from daemon.summit.planning.planner import Planner
from daemon.summit.planning.queueview import Column, QueueIndex, columns, index
from daemon.summit.planning.rootcause import Blockage, CauseKind, root_causes
from daemon.summit.planning.views import queue_graph
from daemon.summit.scheduler import Scheduler

log = structlog.get_logger("cairn.summit.views")

#: Seconds a view is kept while nothing changed: its estimates are made from the clock (a
#: build past its learned duration is expected to end "now"), so they age. Why this long:
#: a view takes seconds of CPU at 50,000 tasks, and an open dashboard on an idle farm
#: recomputed one every 15 s; a minute-old estimate of an hours-long queue misleads no one,
#: and any change (a decision, a lever, the fleet) refreshes it at once anyway.
ESTIMATES_MAX_AGE = 60.0
#: A refresh quicker than this is waited for: the request sees its latest decision.
QUICK_S = 0.5


@dataclass(frozen=True)
class Inputs:
    """What a view is computed from, copied on the event loop."""

    planners: Mapping[tuple[str, str], Planner]
    builders: tuple[Builder, ...]
    levers: Levers
    learned: Learned
    #: Ready tasks kept from a builder: why (a pause, no capable builder), as a root cause.
    holds: Mapping[int, tuple[CauseKind, str]]
    now: float


@dataclass(frozen=True)
class View:
    """The queue graph with its estimates and the root causes, as of one state."""

    #: The scheduler's state it reflects (see :func:`state_key`), and the refresh's number.
    key: Hashable
    seq: int
    #: When its snapshot was taken (epoch seconds), and how long computing it took.
    computed_at: float
    compute_s: float
    eta: Eta
    queue: QueueIndex
    blockage: Blockage
    columns: tuple[Column, ...]
    #: How long copying its inputs held the event loop.
    snapshot_s: float = 0.0
    #: ``time.monotonic()`` when its snapshot was taken: how old its estimates are.
    clock: float = 0.0

    def aged(self) -> bool:
        """Its estimates are older than :data:`ESTIMATES_MAX_AGE`."""
        return time.monotonic() - self.clock >= ESTIMATES_MAX_AGE

    def as_of(self, current: bool) -> dict[str, Any]:
        """What a page says about its age; ``current``: nothing changed since."""
        return {"time": self.computed_at, "age_s": round(max(time.time() -
                                                             self.computed_at, 0.0), 3),
                "up_to_date": current, "compute_s": round(self.compute_s, 3)}


def state_key(scheduler: Scheduler) -> Hashable:
    """What a view depends on besides the clock: the planners (the scheduler's version,
    which every stored decision moves), the levers and the fleet. Reading pages moves none
    of them: a view is computed again only when one moved, or when it aged
    (:meth:`View.aged`)."""
    return (scheduler.version, scheduler.levers,
            tuple((b.name, b.arch, b.status, b.slots, b.heard, b.features, b.memory_mb,
                   b.disk_mb) for b in scheduler.fleet.builders.values()))


def snapshot(scheduler: Scheduler) -> Inputs:
    """Copy what a view is computed from (on the event loop, between two decisions)."""
    holds: dict[int, tuple[CauseKind, str]] = {}
    for task in scheduler.waiting():
        why = scheduler.waiting_reason(task)
        if why is not None:
            paused = scheduler.levers.pause_reason(task) is not None
            holds[task.task_id] = (CauseKind.PAUSED if paused else CauseKind.NO_BUILDER, why)
    return Inputs({k: p.snapshot() for k, p in scheduler.planners.items()},
                  tuple(scheduler.fleet.builders.values()), scheduler.levers,
                  scheduler.learned.copy(), holds, scheduler.clock())


def compute(inputs: Inputs, key: Hashable, seq: int, taken: float) -> View:
    """Every read model of the pages from one snapshot taken at ``taken`` (epoch seconds;
    run in a worker thread), with the cyclic garbage collector paused meanwhile.

    Why paused: a view is made of hundreds of thousands of containers that live for
    seconds, so the collector promoted them and ran full collections of summit's whole heap
    during the computation (two or three per view at 50,000 tasks, up to a second each,
    holding every thread, the event loop included). Nearly all of them are freed by their
    reference counts; paused, the collector meets only what the view keeps, and runs a
    full collection about every other view."""
    with collector_paused():
        return _compute(inputs, key, seq, taken)


def _compute(inputs: Inputs, key: Hashable, seq: int, taken: float) -> View:
    started = time.perf_counter()
    eta = expected_all(inputs.planners, inputs.builders, inputs.levers, inputs.learned,
                       inputs.now)
    planners = [p for _, p in sorted(inputs.planners.items())]
    graph = index(queue_graph(planners, eta.tasks))
    found = root_causes(planners, lambda task: inputs.holds.get(task.task_id))
    return View(key, seq, taken, time.perf_counter() - started, eta, graph, found,
                tuple(columns(graph.graph.nodes)))


@dataclass
class Views:
    """The latest view of one scheduler and the refresh that keeps it current (the
    scheduler is passed to each call: this is kept per scheduler, weakly)."""

    view: View | None = None
    #: The last refresh started, and the refresh the latest request asked for.
    started: int = 0
    wanted: int = 0
    failure: BaseException | None = None
    #: What the last snapshot was taken of (it may still be computing), and when
    #: (``time.monotonic()``).
    taken: Hashable = None
    taken_clock: float = 0.0
    _running: asyncio.Task[None] | None = None
    _published: asyncio.Event = field(default_factory=asyncio.Event)

    def current(self, scheduler: Scheduler) -> bool:
        return (self.view is not None and self.view.key == state_key(scheduler)
                and not self.view.aged())

    async def get(self, scheduler: Scheduler, wait: bool = False) -> View:
        """The latest view; a refresh when it is out of date (see the module's docstring).
        ``wait``: wait for that refresh however long it takes."""
        if self.current(scheduler):
            assert self.view is not None
            return self.view
        # The refresh computing now will do when nothing changed since its snapshot (and it
        # is not too old); else the next one: a snapshot taken from now on sees everything
        # decided before.
        fresh = time.monotonic() - self.taken_clock < ESTIMATES_MAX_AGE
        want = self.started if fresh and self.taken == state_key(scheduler) \
            else self.started + 1
        self.wanted = max(self.wanted, want)
        self._start(scheduler)
        while self.view is None or (self.view.seq < want and
                                    (wait or self.view.compute_s < QUICK_S)):
            published = self._published
            await published.wait()
            if self.failure is not None and (self.view is None or self.view.seq < want):
                raise self.failure
        return self.view

    def _start(self, scheduler: Scheduler) -> None:
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._refresh(scheduler))

    async def _refresh(self, scheduler: Scheduler) -> None:
        while self.wanted > (self.view.seq if self.view is not None else 0):
            if self.view is not None and self.view.compute_s >= QUICK_S:
                # Changes keep coming: at most half of the time goes to refreshing.
                since = time.time() - self.view.computed_at
                await asyncio.sleep(max(self.view.compute_s * 2 - since, 0.0))
            self.started += 1
            seq, key, taken = self.started, state_key(scheduler), time.time()
            self.taken, self.taken_clock = key, time.monotonic()
            copying = time.perf_counter()
            inputs = snapshot(scheduler)
            copied = time.perf_counter() - copying
            try:
                view = replace(await asyncio.to_thread(compute, inputs, key, seq, taken),
                               snapshot_s=copied, clock=self.taken_clock)
            except Exception as exc:  # a bug: the waiting requests fail with it
                log.exception("views.refresh_failed")
                self.failure, self.taken = exc, None
                self.wanted = seq - 1 if self.view is None else self.view.seq
                self._publish()
                return
            self.failure = None
            self.view = view
            self._publish()

    def _publish(self) -> None:
        published, self._published = self._published, asyncio.Event()
        published.set()


_VIEWS: weakref.WeakKeyDictionary[Scheduler, Views] = weakref.WeakKeyDictionary()


def views_of(scheduler: Scheduler) -> Views:
    found = _VIEWS.get(scheduler)
    if found is None:
        found = _VIEWS[scheduler] = Views()
    return found


async def read_view(scheduler: Scheduler, wait: bool = False) -> View:
    """The latest view of ``scheduler``'s planners (see the module's docstring); ``wait``:
    one that reflects everything decided before this call, however long it takes."""
    return await views_of(scheduler).get(scheduler, wait)
