"""Task states, the one table of allowed transitions, and pure reactions to build events.

A reaction takes a task and an event payload and returns the task's new record plus the
payloads to emit; it never touches storage. Reactions are idempotent: an event that has
already been applied (the task is past that point) returns the task unchanged and emits
nothing, so a redelivery or a replay changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from events.errors import CairnError
from events.payloads import (
    BuildDone,
    BuildStarted,
    Outcome,
    PackagePublished,
    PublishFailed,
    TaskCancelled,
    TaskReady,
)

Emit = TaskReady | TaskCancelled

#: How many times a task is dispatched before an infrastructure failure becomes final.
MAX_ATTEMPTS = 3


class TaskState(StrEnum):
    NEW = "new"
    BLOCKED = "blocked"
    READY = "ready"
    BUILDING = "building"
    PUBLISHING = "publishing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SUPERSEDED = "superseded"


class TaskReason(StrEnum):
    """Why a task exists."""

    NEW = "new"
    RELEASE_BUMP = "release bump"
    RETRY = "retry"
    SUPERSEDED = "superseded"


S = TaskState
#: The only transitions a task may take. ``ready`` is never sent back to ``blocked``: work
#: already on the builders' queue is not retracted except by cancel or supersede.
TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    S.NEW: frozenset({S.BLOCKED, S.READY, S.CANCELLED, S.SUPERSEDED}),
    S.BLOCKED: frozenset({S.READY, S.CANCELLED, S.SUPERSEDED}),
    S.READY: frozenset({S.BUILDING, S.FAILED, S.CANCELLED, S.SUPERSEDED}),
    S.BUILDING: frozenset({S.PUBLISHING, S.FAILED, S.READY, S.CANCELLED}),
    S.PUBLISHING: frozenset({S.COMPLETED, S.FAILED, S.READY}),
    S.COMPLETED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
    S.SUPERSEDED: frozenset(),
}
#: A build of the source is still to come: dependents wait for it.
PENDING = frozenset({S.NEW, S.BLOCKED, S.READY, S.BUILDING, S.PUBLISHING})
#: Not yet taken by a builder: may still be blocked, superseded or re-planned.
NOT_STARTED = frozenset({S.NEW, S.BLOCKED, S.READY})
TERMINAL = frozenset(s for s, targets in TRANSITIONS.items() if not targets)


class TransitionError(CairnError):
    """A task was asked to move between two states the transition table does not link."""


class BlockKind(StrEnum):
    DEPENDENCY = "dependency"
    CYCLE = "cycle"
    FAILED = "failed"
    UNRESOLVABLE = "unresolvable"


@dataclass(frozen=True, slots=True)
class BlockReason:
    """Why a task cannot start, as data: ``dependency``/``failed`` name the source (and its
    task, when there is one), ``cycle`` lists the members, ``unresolvable`` the dependency."""

    kind: BlockKind
    source: str | None = None
    task_id: int | None = None
    members: tuple[str, ...] = ()
    name: str | None = None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"kind": str(self.kind)}
        if self.kind in (BlockKind.DEPENDENCY, BlockKind.FAILED):
            out["source"] = self.source
            out["task_id"] = self.task_id
        elif self.kind is BlockKind.CYCLE:
            out["members"] = list(self.members)
        else:
            out["name"] = self.name
        return out


@dataclass(frozen=True, slots=True)
class RepoRef:
    """The repository, arch and channel a planner plans for: the context of a TaskReady."""

    name: str
    url: str
    arch: str = "x86_64"
    channel: str = "volatile"
    index_url: str | None = None


@dataclass(frozen=True, slots=True)
class Task:
    """One build of one source release, as summit stores it."""

    task_id: int
    source: str
    version: str
    release: int
    recipe_path: str
    commit: str
    repository: str
    arch: str
    reason: TaskReason
    state: TaskState = TaskState.NEW
    blocked_by: tuple[BlockReason, ...] = ()
    attempt: int = 1
    builder: str | None = None
    build_release: int = 1
    failure: str | None = None


@dataclass(frozen=True, slots=True)
class Reaction:
    """A reaction's result: the task's new record and what to emit (in order)."""

    task: Task
    emits: tuple[Emit, ...] = ()
    changed: bool = True


def check_transition(task: Task, target: TaskState) -> None:
    """Refuse any move the table does not allow, naming the task and both states."""
    if target not in TRANSITIONS[task.state]:
        allowed = ", ".join(sorted(TRANSITIONS[task.state])) or "none (final state)"
        raise TransitionError(
            f"task {task.task_id} ({task.source} r{task.release}) cannot go from "
            f"{task.state} to {target}; allowed from {task.state}: {allowed}"
        )


def move(task: Task, target: TaskState, **changes: object) -> Task:
    """The task in ``target`` state after checking the table; ``changes`` updates fields."""
    check_transition(task, target)
    return replace(task, state=target, **changes)  # type: ignore[arg-type]


def task_ready(task: Task, repo: RepoRef, critical_path: int) -> TaskReady:
    """The ``task-ready`` payload that dispatches ``task`` to the builders."""
    return TaskReady(
        task_id=task.task_id, source=task.source, version=task.version, release=task.release,
        arch=task.arch, repository=repo.name, repository_url=repo.url, commit=task.commit,
        recipe_path=task.recipe_path or ".", channel=repo.channel,
        build_release=task.build_release, reason=str(task.reason),
        critical_path=max(critical_path, 0), index_url=repo.index_url,
    )


def task_cancelled(task: Task, reason: str) -> TaskCancelled:
    return TaskCancelled(task_id=task.task_id, arch=task.arch, reason=reason)


def _unchanged(task: Task) -> Reaction:
    return Reaction(task=task, changed=False)


def on_build_started(task: Task, event: BuildStarted) -> Reaction:
    """A builder took the task: ``ready → building``; a repeat or a stale start is ignored."""
    if task.state is TaskState.BUILDING and event.builder != task.builder:
        # The broker gave the task to another builder (the first one died holding it).
        return Reaction(task=replace(task, builder=event.builder))
    if task.state is not TaskState.READY or event.attempt < task.attempt:
        return _unchanged(task)
    return Reaction(task=move(task, TaskState.BUILDING, builder=event.builder))


def on_build_done(
    task: Task, event: BuildDone, repo: RepoRef, critical_path: int,
    max_attempts: int = MAX_ATTEMPTS,
) -> Reaction:
    """Success → publishing; infrastructure (or an unasked cancel) → re-dispatched until
    ``max_attempts``, then failed; any other outcome → failed."""
    current = task
    if current.state is TaskState.READY:
        if current.attempt > 1:  # a late report of the attempt that was already retried
            return _unchanged(task)
        current = move(current, TaskState.BUILDING, builder=event.builder)
    if current.state is not TaskState.BUILDING:
        return _unchanged(task)
    if event.outcome is Outcome.SUCCESS:
        return Reaction(task=move(current, TaskState.PUBLISHING, builder=event.builder))
    retryable = event.outcome in (Outcome.INFRASTRUCTURE, Outcome.CANCELLED)
    why = f"{event.outcome}: {event.reason}" if event.reason else str(event.outcome)
    return _retry_or_fail(current, retryable, why, repo, critical_path, max_attempts)


def on_publish_failed(
    task: Task, event: PublishFailed, repo: RepoRef, critical_path: int,
    max_attempts: int = MAX_ATTEMPTS,
) -> Reaction:
    """Vessel could not import: a retryable cause rebuilds (bounded), anything else fails."""
    if task.state is not TaskState.PUBLISHING:
        return _unchanged(task)
    why = f"publish failed: {event.reason}"
    return _retry_or_fail(task, event.retryable, why, repo, critical_path, max_attempts)


def on_package_published(task: Task, event: PackagePublished) -> Reaction:
    """The build is in the index: the task is completed (reordered events are caught up)."""
    current = task
    if current.state is TaskState.READY and current.attempt == 1:
        current = move(current, TaskState.BUILDING)
    if current.state is TaskState.BUILDING:
        current = move(current, TaskState.PUBLISHING)
    if current.state is not TaskState.PUBLISHING:
        return _unchanged(task)
    return Reaction(task=move(current, TaskState.COMPLETED))


def _retry_or_fail(
    current: Task, retryable: bool, why: str, repo: RepoRef,
    critical_path: int, max_attempts: int,
) -> Reaction:
    if retryable and current.attempt < max_attempts:
        again = move(current, TaskState.READY, attempt=current.attempt + 1, builder=None,
                     failure=why)
        return Reaction(task=again, emits=(task_ready(again, repo, critical_path),))
    if retryable:
        why = f"{why} (gave up after {current.attempt} attempts)"
    return Reaction(task=move(current, TaskState.FAILED, failure=why))
