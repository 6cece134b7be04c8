"""What summit's scheduler answers without changing anything: a task by id, the queue in
dispatch order, why a ready task waits, what a task needs, which builders hold what, the
estimates.

A mixin of :class:`daemon.summit.scheduler.Scheduler`, apart so that the scheduler's own
module is the part that changes state (events in, decisions stored and dispatched); the
dashboard, the API and the metrics read through these methods only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection

from daemon.summit.estimates import Learned, expected_all
from daemon.summit.planning.constraints import Constraints, Needs
from daemon.summit.planning.dispatch import queue_order, waiting_reason
from daemon.summit.planning.eta import Eta
from daemon.summit.planning.fleet import Fleet
from daemon.summit.planning.levers import Levers
from daemon.summit.planning.planner import Planner
from daemon.summit.planning.states import Task, TaskState


class SchedulerReading:
    """The read side of the scheduler, over the state :class:`Scheduler` keeps."""

    planners: dict[tuple[str, str], Planner]
    fleet: Fleet
    levers: Levers
    constraints: Constraints
    learned: Learned
    clock: Callable[[], float]
    #: Task id → the (repository, arch) of the planner that owns it.
    _owner: dict[int, tuple[str, str]]
    #: Ready tasks waiting for a builder, and who holds each assigned or building task.
    _waiting: set[int]
    _holder: dict[int, str]
    #: Source → peak memory (KiB) and disk (bytes) of its latest build that reported it.
    _peaks: dict[str, int]
    _disk: dict[str, int]

    def task(self, task_id: int) -> Task | None:
        """The task with this id, whichever planner owns it."""
        planner = self.planner_of(task_id)
        return planner.tasks.get(task_id) if planner is not None else None

    def planner_of(self, task_id: int) -> Planner | None:
        owner = self._owner.get(task_id)
        return self.planners.get(owner) if owner is not None else None

    def all_tasks(self) -> list[Task]:
        return [t for planner in self.planners.values() for t in planner.tasks.values()]

    def needs(self, task: Task) -> Needs:
        """What ``task`` needs: the configured rules, and the peak memory and disk its
        source's latest build took (which exclude only builders declaring less)."""
        needs = self.constraints.needs(task)
        peak, disk = self._peaks.get(task.source, 0), self._disk.get(task.source, 0)
        if not peak and not disk:
            return needs
        return needs.merge(Needs(measured_memory_mb=-(-peak // 1024),
                                 measured_disk_mb=-(-disk // 2**20)))

    def waiting_reasons(self) -> Counter[str]:
        """Ready tasks no builder has, by why: ``paused``, ``builder`` (none online can take
        it) or ``slot`` (one can, once it has a free slot)."""
        out: Counter[str] = Counter()
        for task in self.waiting():
            why = self.waiting_reason(task)
            out["slot" if why is None else
                "paused" if self.levers.pause_reason(task) else "builder"] += 1
        return out

    def waiting_reason(self, task: Task) -> str | None:
        """Why a ready, unassigned task waits (paused, no builder with what it needs), or
        ``None`` when it only waits for a free slot."""
        if task.state is not TaskState.READY or task.builder is not None:
            return None
        return waiting_reason(task, self.fleet.builders.values(), self.needs(task),
                              self.levers)

    def load_of(self) -> Counter[str]:
        """Tasks each builder holds (assigned or building)."""
        return Counter(self._holder.values())

    def order(self) -> Callable[[Task], tuple[int, ...]]:
        """Dispatch order: priority, then critical path, then age."""
        return queue_order(lambda t: self.planners[(t.repository, t.arch)]
                           .critical_path(t.source))

    def queue(self) -> list[Task]:
        """Ready tasks no builder has yet, in the order they will be given out."""
        return sorted(self.waiting(), key=self.order())

    def waiting(self) -> list[Task]:
        """Ready tasks no builder has yet."""
        found = (self.task(i) for i in self._waiting)
        return [t for t in found if t is not None]

    def declared_by(self, arch: str) -> Callable[[str], Collection[str]]:
        """Package name → the sources declaring it, over every repository of ``arch``."""
        planners = [pl for (_, a), pl in self.planners.items() if a == arch]

        def lookup(name: str) -> Collection[str]:
            return {s for pl in planners for s in pl.graph.declared_by(name)}
        return lookup

    def expected(self) -> Eta:
        """Expected start and finish of every open task, and of the whole queue (the last
        arch to finish)."""
        return expected_all(self.planners, self.fleet.builders.values(), self.levers,
                            self.learned, self.clock())

    def _any_free(self) -> bool:
        load = self.load_of()
        return any(self.levers.takes_work(b) and b.slots > load.get(b.name, 0)
                   for b in self.fleet.builders.values())
