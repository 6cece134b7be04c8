"""Which ready task goes to which builder: a pure function of the queue and the fleet.

Order: priority (highest first), then the critical path (longest first: it decides when the
whole queue can finish), then age (lowest task id). A task goes to a builder of its arch
with a free slot that takes work (online, not draining); among those, the one with the most
free slots, so work spreads over the fleet. A builder never holds more tasks (assigned and
building) than its slots.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from daemon.summit.planning.fleet import Builder
from daemon.summit.planning.states import Task

#: A task's place in the queue; smaller goes first.
OrderKey = Callable[[Task], tuple[int, ...]]


@dataclass(frozen=True, slots=True)
class Assignment:
    task: Task
    builder: str


def queue_order(critical_path: Callable[[Task], int]) -> OrderKey:
    return lambda t: (-t.priority, -critical_path(t), t.task_id)


def dispatch(ready: Iterable[Task], builders: Iterable[Builder], load: Mapping[str, int],
             order: OrderKey) -> list[Assignment]:
    """Assign as many ready tasks as there are free slots for, in queue order."""
    free = {b.name: b.slots - load.get(b.name, 0) for b in builders if b.takes_work}
    free = {name: n for name, n in free.items() if n > 0}
    if not free:
        return []
    arch_of = {b.name: b.arch for b in builders if b.name in free}
    out: list[Assignment] = []
    for task in sorted(ready, key=order):
        candidates = [name for name in free if arch_of[name] == task.arch]
        if not candidates:
            continue
        best = max(candidates, key=lambda name: (free[name], name))
        out.append(Assignment(task, best))
        free[best] -= 1
        if free[best] == 0:
            del free[best]
            if not free:
                break
    return out


def waiting_reason(task: Task, builders: Iterable[Builder]) -> str | None:
    """Why no builder could take ``task`` now, or ``None`` when one can (once free)."""
    present = [b for b in builders if b.arch == task.arch]
    if not any(b.takes_work for b in present):
        return f"no online builder for {task.arch}"
    return None
