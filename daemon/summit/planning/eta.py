"""When each open task is expected to start and finish, and the whole queue with it.

A list-scheduling simulation of the farm from now on, with what summit knows: the open tasks
and which waits for which, how long each source's last build took (learned durations; a
source never built takes the typical learned duration), the builders' slots, and what runs
now. The rules are the dispatcher's: a slot takes the first task in queue order (the order
the caller gives) whose dependencies are all finished — published, which takes ``overhead_s``
after the build — and whose back-off is over; a running build frees its slot when its
learned duration is up (now, if it overran). A task that waits for something that will
never finish (a failed build, a cycle, an unresolvable dependency) has no estimate.

Pure and ``O(n log n)``: it runs on every read of the queue.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from statistics import median

#: What a build of a source nobody has built yet is taken to last when nothing is learned.
DEFAULT_DURATION_S = 60.0


@dataclass(frozen=True, slots=True)
class EtaTask:
    """One open task as the estimate sees it. ``deps`` are the open tasks it waits for;
    ``started_at`` is set for a task building now, ``built`` for one publishing now."""

    task_id: int
    duration_s: float
    deps: tuple[int, ...] = ()
    started_at: float | None = None
    built: bool = False
    #: A retried attempt does not start before this time (its back-off).
    not_before: float | None = None
    #: Waits for something that will never finish: no estimate.
    stuck: bool = False


@dataclass(frozen=True, slots=True)
class Expected:
    start: float
    finish: float


@dataclass(frozen=True, slots=True)
class Eta:
    """Expected start and finish per task (tasks without an estimate are absent), and the
    expected finish of everything estimated (``None``: nothing to estimate)."""

    tasks: Mapping[int, Expected]
    finish: float | None


def typical_duration(learned: Iterable[float], default: float = DEFAULT_DURATION_S) -> float:
    """The duration assumed for a source never built: the median of the learned ones."""
    known = [d for d in learned if d > 0]
    return median(known) if known else default


def estimate(tasks: Sequence[EtaTask], slots: int, now: float,
             overhead_s: float = 0.0) -> Eta:
    """Simulate the queue (``tasks`` in queue order) on ``slots`` slots from ``now``."""
    if slots <= 0 or not tasks:
        return Eta({}, None)
    order = {t.task_id: i for i, t in enumerate(tasks)}
    by_id = {t.task_id: t for t in tasks}
    out: dict[int, Expected] = {}
    free: list[float] = []
    for task in tasks:
        if task.built:
            out[task.task_id] = Expected(task.started_at or now, now + overhead_s)
        elif task.started_at is not None:
            end = max(task.started_at + task.duration_s, now)
            out[task.task_id] = Expected(task.started_at, end + overhead_s)
            free.append(end)
    free = sorted(free)[:slots] if len(free) > slots else free
    free += [now] * (slots - len(free))
    heapq.heapify(free)
    waiting, dependents = _pending(tasks, by_id, out)
    timed: list[tuple[float, int, int]] = []  # (ready at, queue position, task id)
    for task_id in [i for i, n in waiting.items() if n == 0]:
        heapq.heappush(timed, (_ready_at(by_id[task_id], out, now), order[task_id], task_id))
    available: list[tuple[int, int]] = []
    while timed or available:
        at = heapq.heappop(free)
        while timed and timed[0][0] <= at:
            _, position, task_id = heapq.heappop(timed)
            heapq.heappush(available, (position, task_id))
        if not available:
            heapq.heappush(free, timed[0][0])
            continue
        _, task_id = heapq.heappop(available)
        task = by_id[task_id]
        out[task_id] = Expected(at, at + task.duration_s + overhead_s)
        heapq.heappush(free, at + task.duration_s)
        for user in dependents.get(task_id, ()):
            waiting[user] -= 1
            if waiting[user] == 0:
                heapq.heappush(timed, (_ready_at(by_id[user], out, now), order[user], user))
    return Eta(out, max((e.finish for e in out.values()), default=None))


def _pending(tasks: Sequence[EtaTask], by_id: Mapping[int, EtaTask],
             placed: Mapping[int, Expected]) -> tuple[dict[int, int], dict[int, list[int]]]:
    """Tasks still to start with how many unfinished dependencies each waits for, and who
    waits for each task. A stuck task, and whatever waits for it, is left out."""
    waiting: dict[int, int] = {}
    dependents: dict[int, list[int]] = {}
    for task in tasks:
        if task.task_id in placed or task.stuck:
            continue
        deps = [d for d in task.deps if d not in placed]
        if any(d not in by_id or by_id[d].stuck for d in deps):
            continue  # waits for a task that is not open, or for one that never finishes
        waiting[task.task_id] = len(deps)
        for dep in deps:
            dependents.setdefault(dep, []).append(task.task_id)
    return waiting, dependents


def _ready_at(task: EtaTask, placed: Mapping[int, Expected], now: float) -> float:
    finished = [placed[d].finish for d in task.deps if d in placed]
    return max([now, *finished, *([task.not_before] if task.not_before else [])])
