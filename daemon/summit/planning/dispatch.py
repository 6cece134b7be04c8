"""Which ready task goes to which builder: a pure function of the queue and the fleet.

Order: priority (highest first), then the critical path (longest first: it decides when the
whole queue can finish), then age (lowest task id). A task goes to a builder of its arch
with a free slot that takes work (online, not drained by an operator) and has what the task
needs (features, memory, disk: :mod:`daemon.summit.planning.constraints`); among those, the
one with the most free slots, so work spreads over the fleet. A task no free builder can
take is passed over, not waited for: the next one in order may fit elsewhere. A builder
never holds more tasks (assigned and building) than its slots. Paused tasks (the farm or
their repository) are not assigned at all. When an operator changes priorities, assignments
that no builder has claimed yet are decided again (:func:`overtaken`): a task now ahead of
one takes its slot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from daemon.summit.planning.constraints import Needs, fits
from daemon.summit.planning.fleet import Builder
from daemon.summit.planning.levers import Levers
from daemon.summit.planning.states import Task

#: A task's place in the queue; smaller goes first.
OrderKey = Callable[[Task], tuple[int, ...]]
NeedsOf = Callable[[Task], Needs]


@dataclass(frozen=True, slots=True)
class Assignment:
    task: Task
    builder: str


def queue_order(critical_path: Callable[[Task], int]) -> OrderKey:
    return lambda t: (-t.priority, -critical_path(t), t.task_id)


#: No needs, no levers: any builder of the arch, nothing paused.
NO_NEEDS = Needs()
NO_LEVERS = Levers()


def _no_needs(task: Task) -> Needs:
    return NO_NEEDS


def dispatch(ready: Iterable[Task], builders: Iterable[Builder], load: Mapping[str, int],
             order: OrderKey, needs: NeedsOf = _no_needs,
             levers: Levers = NO_LEVERS) -> list[Assignment]:
    """Assign as many ready tasks as there are free slots for, in queue order."""
    free_builders = {b.name: b for b in builders
                     if levers.takes_work(b) and b.slots - load.get(b.name, 0) > 0}
    free = {name: b.slots - load.get(name, 0) for name, b in free_builders.items()}
    out: list[Assignment] = []
    for task in sorted(ready, key=order):
        if not free:
            break
        if levers.holds(task):
            continue
        wants = needs(task)
        candidates = [name for name in free if free_builders[name].arch == task.arch
                      and fits(free_builders[name], wants)]
        if not candidates:
            continue
        best = max(candidates, key=lambda name: (free[name], name))
        out.append(Assignment(task, best))
        free[best] -= 1
        if free[best] == 0:
            del free[best]
    return out


def overtaken(waiting: Iterable[Task], assigned: Iterable[Task], builders: Iterable[Builder],
              load: Mapping[str, int], order: OrderKey, needs: NeedsOf = _no_needs,
              levers: Levers = NO_LEVERS) -> list[Task]:
    """Assignments not claimed yet whose slots tasks now ahead of them in the queue should
    have (an operator changed priorities): each waiting task that no free slot takes, in queue
    order, takes the slot of the assignment last in order among those behind it on a builder
    that fits it. Returns the assignments to withdraw; :func:`dispatch` then gives the freed
    slots out in queue order. Builders that take no work (drained) keep their assignments,
    and a paused task takes no one's slot."""
    waiting = list(waiting)
    builders = list(builders)
    placed = {a.task.task_id for a in dispatch(waiting, builders, load, order, needs, levers)}
    able = {b.name: b for b in builders if levers.takes_work(b)}
    victims = sorted((t for t in assigned if t.assigned and t.builder in able), key=order)
    out: list[Task] = []
    for task in sorted(waiting, key=order):
        if not victims:
            break
        if task.task_id in placed or levers.holds(task):
            continue
        wants = needs(task)
        ahead = order(task)
        victim = next((v for v in reversed(victims) if order(v) > ahead
                       and able[v.builder or ""].arch == task.arch
                       and fits(able[v.builder or ""], wants)), None)
        if victim is not None:
            victims.remove(victim)
            out.append(victim)
    return out


def waiting_reason(task: Task, builders: Iterable[Builder], needs: Needs = NO_NEEDS,
                   levers: Levers = NO_LEVERS) -> str | None:
    """Why no builder could take ``task`` now, or ``None`` when one can (once it has a free
    slot)."""
    paused = levers.pause_reason(task)
    if paused is not None:
        return paused
    present = [b for b in builders if b.arch == task.arch and levers.takes_work(b)]
    if not present:
        return f"no online builder for {task.arch}"
    if not any(fits(b, needs) for b in present):
        return f"no builder with {needs.describe()} for {task.arch}"
    return None
