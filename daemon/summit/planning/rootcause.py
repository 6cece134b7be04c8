"""Blocked tasks grouped by what ultimately holds them back.

A blocked task names its immediate blockers (``Task.blocked_by``): mostly "waiting for X",
where X is itself blocked by something else. On a real tree hundreds of tasks wait behind a
handful of causes — a cycle with nothing published, a failed build, a name nothing
provides, a source with no build and nothing published, and, for a ready task, whatever
keeps it from a builder (a paused repository, no capable builder). An operator acts on
those causes, so the dashboard shows them, each with how many tasks it holds back.

The rule: a task's root causes are its own hard blockers plus the root causes of every
task it waits for; a task that waits only for builds that are running or can run has none
(it is merely queued). A task held back by two causes counts under both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from daemon.summit.planning.planner import Planner
from daemon.summit.planning.states import BlockKind, BlockReason, Task, TaskState

#: Members of a cycle named in its one-line description; the rest are collapsed.
SHOWN_MEMBERS = 3


class CauseKind(StrEnum):
    CYCLE = "cycle"
    FAILED = "failed"
    UNRESOLVABLE = "unresolvable"
    #: A source depended on with no build planned and nothing published.
    MISSING = "missing"
    #: Dispatch is paused for the task's repository (or the whole farm).
    PAUSED = "paused"
    #: No builder that takes work can take the task.
    NO_BUILDER = "no-builder"


#: Why a ready task is not given to a builder (kind and a sentence), or None when it can be.
Hold = Callable[[Task], tuple[CauseKind, str] | None]


@dataclass(frozen=True, slots=True)
class RootCause:
    """One cause; ``subject`` names it within its repository and arch (the failed source,
    the unresolvable name, the cycle's first member, the hold's sentence)."""

    kind: CauseKind
    repository: str
    arch: str
    subject: str
    members: tuple[str, ...] = ()
    #: The failed task, for a failure.
    task_id: int | None = None
    #: The failure's reason, or the hold's sentence.
    detail: str = ""

    @property
    def key(self) -> str:
        """A stable name for links (``/tasks?cause=<key>``)."""
        return f"{self.kind}:{self.repository}:{self.arch}:{self.subject}"

    def describe(self) -> str:
        """The cause in words, without the count: ``gcc failed``."""
        if self.kind is CauseKind.CYCLE:
            shown = ", ".join(self.members[:SHOWN_MEMBERS])
            more = ", …" if len(self.members) > SHOWN_MEMBERS else ""
            return f"cycle of {len(self.members)} ({shown}{more}) with nothing published"
        if self.kind is CauseKind.FAILED:
            return f"{self.subject} failed"
        if self.kind is CauseKind.UNRESOLVABLE:
            return f"nothing provides {self.subject}"
        if self.kind is CauseKind.MISSING:
            return f"{self.subject} has no build planned and nothing published"
        return self.detail


@dataclass(frozen=True, slots=True)
class CauseGroup:
    """A root cause and the open tasks it holds back (ids, ascending)."""

    cause: RootCause
    tasks: tuple[int, ...]

    @property
    def text(self) -> str:
        n = len(self.tasks)
        return f"{self.cause.describe()}: blocks {n} task{'s' if n != 1 else ''}"

    def to_json(self) -> dict[str, object]:
        c = self.cause
        return {"key": c.key, "kind": str(c.kind), "repository": c.repository, "arch": c.arch,
                "subject": c.subject, "members": list(c.members), "task_id": c.task_id,
                "detail": c.detail, "text": self.text, "count": len(self.tasks)}


@dataclass(frozen=True, slots=True)
class Blockage:
    """Every root cause (most tasks held back first), and the blocked tasks with none: they
    only wait for builds that are running or can run."""

    groups: tuple[CauseGroup, ...] = ()
    queued: int = 0

    @property
    def held(self) -> int:
        """Distinct tasks held back by at least one root cause."""
        return len({t for g in self.groups for t in g.tasks})

    def group(self, key: str) -> CauseGroup | None:
        return next((g for g in self.groups if g.cause.key == key), None)


_NONE: frozenset[RootCause] = frozenset()
_WAITING = (TaskState.NEW, TaskState.BLOCKED)


@dataclass(slots=True)
class _Walk:
    planner: Planner
    hold: Hold | None
    memo: dict[int, frozenset[RootCause]] = field(default_factory=dict)
    #: One object per cause (a cause is named by thousands of tasks).
    causes: dict[tuple[object, ...], RootCause] = field(default_factory=dict)

    def cause(self, kind: CauseKind, subject: str, members: tuple[str, ...] = (),
              task_id: int | None = None, detail: str = "") -> RootCause:
        key = (kind, subject, members, task_id, detail)
        found = self.causes.get(key)
        if found is None:
            repo = self.planner.repo
            found = RootCause(kind, repo.name, repo.arch, subject, members, task_id, detail)
            self.causes[key] = found
        return found

    def direct(self, task: Task) -> tuple[set[RootCause], list[Task]]:
        """A task's own causes, and the open tasks it waits for (whose causes it shares)."""
        own: set[RootCause] = set()
        waits: list[Task] = []
        if task.state is TaskState.READY:
            held = self.hold(task) if self.hold is not None and not task.assigned else None
            if held is not None:
                own.add(self.cause(held[0], held[1], detail=held[1]))
            return own, waits
        if task.state not in _WAITING:
            return own, waits
        tasks = self.planner.tasks
        for reason in task.blocked_by:
            if reason.kind is BlockKind.DEPENDENCY and reason.task_id is not None:
                waited = tasks.get(reason.task_id)
                if waited is not None:
                    waits.append(waited)
            else:
                own.add(self._hard(reason))
        return own, waits

    def _hard(self, reason: BlockReason) -> RootCause:
        if reason.kind is BlockKind.CYCLE:
            members = tuple(sorted(reason.members))
            return self.cause(CauseKind.CYCLE, members[0] if members else "",
                              members=members)
        if reason.kind is BlockKind.FAILED:
            failed = self.planner.tasks.get(reason.task_id) if reason.task_id else None
            return self.cause(CauseKind.FAILED, reason.source or "", task_id=reason.task_id,
                              detail=(failed.failure or "") if failed else "")
        if reason.kind is BlockKind.UNRESOLVABLE:
            return self.cause(CauseKind.UNRESOLVABLE, reason.name or "")
        return self.cause(CauseKind.MISSING, reason.source or "")

    def roots(self, start: Task) -> frozenset[RootCause]:
        """Iterative (a chain may be thousands long); a wait loop, which the planner never
        makes (cycles are their own cause), would add nothing rather than loop."""
        memo = self.memo
        if start.task_id in memo:
            return memo[start.task_id]
        opened: dict[int, tuple[set[RootCause], list[Task]]] = {}
        stack = [start]
        while stack:
            task = stack[-1]
            if task.task_id in memo:
                stack.pop()
                continue
            seen = opened.get(task.task_id)
            if seen is None:
                seen = opened[task.task_id] = self.direct(task)
                todo = [w for w in seen[1] if w.task_id not in memo and w.task_id not in opened]
                if todo:
                    stack.extend(todo)
                    continue
            stack.pop()
            own, waits = seen
            for waited in waits:
                own |= memo.get(waited.task_id, _NONE)
            memo[task.task_id] = frozenset(own) if own else _NONE
        return memo[start.task_id]


def root_causes(planners: Iterable[Planner], hold: Hold | None = None) -> Blockage:
    """Group every open, not started task of ``planners`` by its root causes."""
    members: dict[RootCause, list[int]] = {}
    queued = 0
    for planner in planners:
        walk = _Walk(planner, hold)
        for task in planner.open_tasks():
            if task.state not in (TaskState.NEW, TaskState.BLOCKED, TaskState.READY):
                continue
            found = walk.roots(task)
            for cause in found:
                members.setdefault(cause, []).append(task.task_id)
            if not found and task.state is TaskState.BLOCKED:
                queued += 1
    groups = sorted((CauseGroup(c, tuple(sorted(ids))) for c, ids in members.items()),
                    key=lambda g: (-len(g.tasks), g.cause.key))
    return Blockage(tuple(groups), queued)
