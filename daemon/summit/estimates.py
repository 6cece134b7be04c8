"""What summit learns for its estimates, and the estimates of the open queue.

:class:`Learned` follows the scheduler's tasks: how long each source's last successful build
took (loaded from the build history at start, then from every report), when each running
build started, and how long a built task takes to be published (a running average: the
overhead between a build's end and its dependents' start). :func:`expected` feeds that and
the queue to the pure simulation (:mod:`daemon.summit.planning.eta`), per arch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from daemon.summit.planning.dispatch import queue_order
from daemon.summit.planning.eta import Eta, EtaTask, estimate, typical_duration
from daemon.summit.planning.fleet import Builder
from daemon.summit.planning.levers import Levers
from daemon.summit.planning.planner import Planner
from daemon.summit.planning.states import PENDING, BlockKind, Task, TaskState

#: Weight of the newest publication in the running average of the publishing overhead.
_OVERHEAD_WEIGHT = 0.2
Key = tuple[str, str, str]


@dataclass
class Learned:
    """Durations per (repository, arch, source), running builds' starts, the overhead."""

    durations: dict[Key, float] = field(default_factory=dict)
    overhead_s: float = 0.0
    _started: dict[int, float] = field(default_factory=dict)
    _built: dict[int, float] = field(default_factory=dict)

    def observe(self, task: Task, now: float) -> None:
        """A task's new record (the scheduler calls it for every change)."""
        if task.state is TaskState.BUILDING:
            self._started.setdefault(task.task_id, now)
            return
        self._started.pop(task.task_id, None)
        if task.state is TaskState.PUBLISHING:
            self._built.setdefault(task.task_id, now)
            return
        built = self._built.pop(task.task_id, None)
        if built is not None and task.state is TaskState.COMPLETED:
            sample = max(now - built, 0.0)
            self.overhead_s += _OVERHEAD_WEIGHT * (sample - self.overhead_s)

    def built(self, task: Task, duration_s: float) -> None:
        """A successful build of ``task`` took ``duration_s``."""
        self.durations[(task.repository, task.arch, task.source)] = duration_s

    def copy(self) -> Learned:
        """A copy to read in another thread while this one goes on learning."""
        return Learned(dict(self.durations), self.overhead_s, dict(self._started),
                       dict(self._built))

    def started_at(self, task_id: int) -> float | None:
        return self._started.get(task_id)


def expected(planners: Mapping[tuple[str, str], Planner], builders: Iterable[Builder],
             levers: Levers, learned: Learned, now: float, arch: str) -> Eta:
    """Expected start and finish of every open task of ``arch``, and of the whole queue."""
    mine = [pl for (_, a), pl in sorted(planners.items()) if a == arch]
    slots = 0 if levers.paused else sum(
        b.slots for b in builders if b.arch == arch and levers.takes_work(b))
    typical = typical_duration(d for (_, a, _), d in learned.durations.items() if a == arch)
    tasks: list[tuple[Task, EtaTask]] = []
    for planner in mine:
        for task in planner.open_tasks():
            tasks.append((task, _eta_task(planner, task, learned, typical)))
    order = queue_order(lambda t: planners[(t.repository, t.arch)].critical_path(t.source))
    tasks.sort(key=lambda pair: order(pair[0]))
    return estimate([e for _, e in tasks], slots, now, learned.overhead_s)


def expected_all(planners: Mapping[tuple[str, str], Planner], builders: Iterable[Builder],
                 levers: Levers, learned: Learned, now: float) -> Eta:
    """Expected start and finish of every open task, and of the whole queue (the last arch
    to finish)."""
    fleet = list(builders)
    etas = [expected(planners, fleet, levers, learned, now, arch)
            for arch in sorted({a for _, a in planners})]
    finishes = [e.finish for e in etas if e.finish is not None]
    return Eta({i: x for e in etas for i, x in e.tasks.items()},
               max(finishes) if finishes else None)


def _eta_task(planner: Planner, task: Task, learned: Learned, typical: float) -> EtaTask:
    deps = tuple(dep.task_id for dep in (planner.latest(s) for s in
                                         planner.schedule.effective_deps(task.source))
                 if dep is not None and dep.state in PENDING and dep.task_id != task.task_id)
    stuck = any(r.kind is not BlockKind.DEPENDENCY for r in task.blocked_by)
    duration = learned.durations.get((task.repository, task.arch, task.source), typical)
    # A build summit saw start before its restart is taken to have started at the restart.
    started = learned.started_at(task.task_id) if task.state is TaskState.BUILDING else None
    return EtaTask(task.task_id, duration, deps=deps, started_at=started,
                   built=task.state is TaskState.PUBLISHING,
                   not_before=task.retry_at if task.builder is None else None, stuck=stuck)
