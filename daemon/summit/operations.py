"""What an operator may ask of summit (the API's and the CLI's actions), each a direct call
into the planner of the task concerned, applied under the scheduler's lock: retry, cancel
and priority of one task or of every task matching a filter, pause and resume dispatch,
drain and enable a builder."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from daemon.summit.planning.levers import Levers
from daemon.summit.planning.planner import PlanError
from daemon.summit.planning.states import NOT_STARTED, TRANSITIONS, Task, TaskState
from daemon.summit.scheduler import Scheduler
from events.errors import CairnError


@dataclass(frozen=True, slots=True)
class TaskFilter:
    """Which tasks a bulk action is about; every field given must match. ``source`` is a
    shell-style pattern (``py*``)."""

    repository: str | None = None
    state: TaskState | None = None
    source: str | None = None

    def matches(self, task: Task) -> bool:
        return ((self.repository is None or task.repository == self.repository)
                and (self.state is None or task.state is self.state)
                and (self.source is None or fnmatchcase(task.source, self.source)))


@dataclass
class BulkResult:
    """What a bulk action did (or, in a dry run, would do) to each matching task."""

    dry_run: bool
    matched: list[Task] = field(default_factory=list)
    done: list[Task] = field(default_factory=list)
    skipped: list[tuple[Task, str]] = field(default_factory=list)

    def to_json(self, render: Callable[[Task], dict[str, Any]]) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "matched": [render(t) for t in self.matched],
                "done": [render(t) for t in self.done],
                "skipped": [{"task": render(t), "error": why} for t, why in self.skipped]}


#: What an operator may build again.
RETRYABLE = frozenset({TaskState.FAILED, TaskState.CANCELLED})


class Operations:
    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler

    async def use_environment(self, repository: str, environment: str | None) -> list[Task]:
        """Point a repository at another build environment: what it has built is built again
        in it (reason "build environment changed"); returns the tasks that changed."""
        return await self.scheduler.use_environment(repository, environment)

    async def retry(self, task_id: int) -> Task:
        """A new task for the source of a failed one; returns the new task."""
        planner = await self.scheduler.decide(task_id, lambda planner: planner.retry(task_id))
        new = planner.latest(planner.tasks[task_id].source)
        assert new is not None  # retry created it
        return new

    async def cancel(self, task_id: int, reason: str = "cancelled by an operator") -> Task:
        """Cancel a task that has not finished; returns it as it is now."""
        planner = await self.scheduler.decide(
            task_id, lambda planner: planner.cancel(task_id, reason))
        return planner.tasks[task_id]

    async def prioritise(self, task_id: int, priority: int) -> Task:
        """Set the priority of a task not yet building; the queue is dispatched anew,
        assignments no builder has claimed yet included (a task now ahead takes the slot of
        one behind it)."""
        planner = await self.scheduler.decide(
            task_id, lambda planner: planner.prioritise(task_id, priority), reorder=True)
        return planner.tasks[task_id]

    # -- levers --------------------------------------------------------------------------
    async def pause(self, repository: str | None = None) -> Levers:
        self._known(repository)
        return await self.scheduler.steer(lambda levers: levers.pause(repository, True))

    async def resume(self, repository: str | None = None) -> Levers:
        self._known(repository)
        return await self.scheduler.steer(lambda levers: levers.pause(repository, False))

    async def drain(self, builder: str) -> Levers:
        self._builder(builder)
        return await self.scheduler.steer(lambda levers: levers.drain(builder, True))

    async def enable(self, builder: str) -> Levers:
        self._builder(builder)
        return await self.scheduler.steer(lambda levers: levers.drain(builder, False))

    def _known(self, repository: str | None) -> None:
        if repository is not None and repository not in self.scheduler.repos:
            raise PlanError(f"there is no repository {repository!r}")

    def _builder(self, builder: str) -> None:
        if self.scheduler.fleet.get(builder) is None:
            raise PlanError(f"summit knows no builder {builder!r}")

    # -- bulk ------------------------------------------------------------------------------
    def select(self, which: TaskFilter) -> list[Task]:
        return sorted((t for t in self.scheduler.all_tasks() if which.matches(t)),
                      key=lambda t: t.task_id)

    async def bulk_cancel(self, which: TaskFilter, dry_run: bool,
                          reason: str = "cancelled by an operator") -> BulkResult:
        """Cancel every matching task that can still be cancelled."""
        matched = [t for t in self.select(which) if TaskState.CANCELLED in TRANSITIONS[t.state]]
        return await self._bulk(matched, dry_run, lambda t: self.cancel(t.task_id, reason))

    async def bulk_retry(self, which: TaskFilter, dry_run: bool) -> BulkResult:
        """Retry every matching failed or cancelled task that is the latest of its
        source."""
        matched = [t for t in self.select(which) if t.state in RETRYABLE and self._latest(t)]
        return await self._bulk(matched, dry_run, lambda t: self.retry(t.task_id))

    async def bulk_prioritise(self, which: TaskFilter, priority: int,
                              dry_run: bool) -> BulkResult:
        """Set the priority of every matching task not yet building."""
        matched = [t for t in self.select(which) if t.state in NOT_STARTED]
        return await self._bulk(matched, dry_run,
                                lambda t: self.prioritise(t.task_id, priority))

    def _latest(self, task: Task) -> bool:
        planner = self.scheduler.planner_of(task.task_id)
        latest = planner.latest(task.source) if planner is not None else None
        return latest is not None and latest.task_id == task.task_id

    @staticmethod
    async def _bulk(matched: Sequence[Task], dry_run: bool,
                    act: Callable[[Task], Any]) -> BulkResult:
        result = BulkResult(dry_run, list(matched))
        if dry_run:
            return result
        for task in matched:
            try:
                result.done.append(await act(task))
            except CairnError as exc:  # it moved on meanwhile: say so, go on
                result.skipped.append((task, str(exc)))
        return result
