"""What limits the farm's progress now, in one sentence.

The figures are the ones summit's metrics export (tasks by state, builders online) plus the
builders' slots and what they hold, so the dashboard's sentence and a Prometheus graph never
disagree. The sentence names the first limit that applies:

1. nothing is open: the farm is idle;
2. no builder takes work: ready tasks wait for one;
3. every slot is taken and ready tasks wait: the builders are the limit;
4. slots are free, nothing ready waits and tasks are publishing: the repository is the limit;
5. nothing is ready, building or publishing, but tasks are blocked: their root causes are;
6. otherwise the farm builds as fast as the dependency graph lets it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from daemon.summit.planning.fleet import Builder
from daemon.summit.planning.rootcause import Blockage
from daemon.summit.planning.states import Task, TaskState
from daemon.summit.planning.views import OPEN, counts


@dataclass(frozen=True, slots=True)
class Progress:
    #: Tasks by state (every state, zero included): the ``cairn_tasks`` gauge.
    counts: Mapping[str, int]
    #: Builders present (online or draining): the ``cairn_builders_online`` gauge.
    builders_online: int
    #: Slots of the builders that take work, and how many of those are taken.
    slots: int
    busy: int
    #: Ready tasks no builder has been given yet.
    waiting: int

    @property
    def open(self) -> int:
        return sum(self.counts[s] for s in OPEN)

    @property
    def free(self) -> int:
        return max(self.slots - self.busy, 0)


@dataclass(frozen=True, slots=True)
class Limit:
    """What limits progress: ``kind`` for styling and tests, ``text`` for people."""

    kind: str
    text: str


def progress(tasks: Iterable[Task], builders: Iterable[Builder], load: Mapping[str, int],
             takes_work: Callable[[Builder], bool] = lambda b: b.takes_work) -> Progress:
    """The figures from the planners' tasks and summit's fleet (``load``: tasks each builder
    holds, assigned or building; ``takes_work``: whether a builder is given work, drained
    ones are not)."""
    listed = list(tasks)
    fleet = list(builders)
    working = [b for b in fleet if takes_work(b)]
    waiting = Counter(t.state is TaskState.READY and t.builder is None for t in listed)[True]
    return Progress(counts=counts(listed),
                    builders_online=sum(1 for b in fleet if b.present),
                    slots=sum(b.slots for b in working),
                    busy=sum(min(load.get(b.name, 0), b.slots) for b in working),
                    waiting=waiting)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def limit(p: Progress, blockage: Blockage) -> Limit:
    """The first limit that applies (see the module's docstring)."""
    c = p.counts
    building, publishing, blocked = (c[TaskState.BUILDING], c[TaskState.PUBLISHING],
                                     c[TaskState.BLOCKED])
    causes = len(blockage.groups)
    if not p.open:
        return Limit("idle", "Nothing to do: no task is open.")
    if p.waiting and not p.slots:
        return Limit("no-builders", f"No builder takes work: {_plural(p.waiting, 'ready task')}"
                                    " waiting for one.")
    if p.waiting and not p.free:
        return Limit("builders-busy", f"Builders busy: all {_plural(p.slots, 'slot')} taken, "
                                      f"{_plural(p.waiting, 'ready task')} waiting for one.")
    if publishing and not p.waiting:
        idle = "Builders idle" if not building else f"{p.free} of {p.slots} slots idle"
        return Limit("repository", f"{idle} while {_plural(publishing, 'task')} publish: "
                                   "waiting for the repository.")
    if not (p.waiting or building or publishing or c[TaskState.READY]) and blocked:
        return Limit("blocked", f"Everything left is blocked by {_plural(causes, 'root cause')}"
                                f" ({_plural(blockage.held, 'task')} held back).")
    held = f"; {_plural(blockage.held, 'task')} held back by {_plural(causes, 'root cause')}" \
        if causes else ""
    return Limit("building", f"Building {building} on {_plural(p.builders_online, 'builder')}"
                             f" ({p.free} of {_plural(p.slots, 'slot')} free){held}.")
