"""Task states, the one table of allowed transitions, and pure reactions to build events.

A reaction takes a task and an event payload and returns the task's new record plus the
payloads to emit; it never touches storage. Reactions are idempotent: an event that has
already been applied (the task is past that point) returns the task unchanged and emits
nothing, so a redelivery or a replay changes nothing.

Summit's decision is authoritative end to end. A ``ready`` task is assigned to one builder
(``task-ready``, with its attempt); the builder claims it (``build-started``) and starts only
when summit admits the claim (``build-admitted``). A claim for a task that was cancelled,
superseded or given to another attempt since is refused (``task-cancelled`` to that
builder). A build report of any attempt but the current one is ignored, and a successful
build goes to vessel only as summit's ``build-accepted``, once summit has checked that it is
the open task for its source and release and that its packages are the source's own.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from events.errors import CairnError
from events.payloads import (
    BuildAccepted,
    BuildAdmitted,
    BuildDone,
    BuildLimits,
    BuildStarted,
    Outcome,
    PackagePublished,
    PublishFailed,
    TaskCancelled,
    TaskReady,
    build_done_v2,
)

Emit = TaskReady | TaskCancelled | BuildAdmitted | BuildAccepted

#: How many times a task is dispatched before an infrastructure failure becomes final.
MAX_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Backoff:
    """How long an infrastructure failure waits before its next attempt: ``base_s`` after
    the first attempt, doubling with each further one, never more than ``max_s``. A builder
    that was lost, a fetch or an import that failed on the network is likely to fail again
    at once; waiting gives the cause time to pass and keeps a broken farm from spinning."""

    base_s: float = 10.0
    max_s: float = 600.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after attempt ``attempt`` (1-based) failed."""
        return min(self.base_s * (1 << min(max(attempt - 1, 0), 30)), self.max_s)


NO_BACKOFF = Backoff(0.0, 0.0)


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
    #: An operator pointed the repository at another build environment.
    ENVIRONMENT_CHANGED = "build environment changed"


S = TaskState
#: The only transitions a task may take. ``ready`` goes back to ``blocked`` when re-planning
#: finds it cannot start after all (its repository's new build environment lacks a
#: dependency, a provider has a newer build pending): an assignment its builder has not
#: claimed is withdrawn first (:func:`reblock`); a claimed one is ``building`` and runs on.
#: ``building`` goes back to ``ready`` for another attempt after an infrastructure failure,
#: and to ``superseded`` when a newer release of its source was published first.
TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    S.NEW: frozenset({S.BLOCKED, S.READY, S.CANCELLED, S.SUPERSEDED}),
    S.BLOCKED: frozenset({S.READY, S.CANCELLED, S.SUPERSEDED}),
    S.READY: frozenset({S.BLOCKED, S.BUILDING, S.FAILED, S.CANCELLED, S.SUPERSEDED}),
    S.BUILDING: frozenset({S.PUBLISHING, S.FAILED, S.READY, S.CANCELLED, S.SUPERSEDED}),
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
    #: The base priority of the repository's new tasks (operators adjust tasks from it).
    priority: int = 0
    #: The build environment (sha256 digest) its builds run in; ``None``: none named, the
    #: builder decides (its own, or its host's system when it allows that).
    environment: str | None = None


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
    #: Which dispatch this is: every (re)assignment to a builder after the first adds one.
    attempt: int = 1
    #: The builder a ``ready`` task is assigned to, or that runs or ran it.
    builder: str | None = None
    build_release: int = 1
    failure: str | None = None
    priority: int = 0
    #: When (epoch seconds) a ``ready`` task was assigned to ``builder``.
    assigned_at: float | None = None
    #: A ``ready`` task given another attempt after an infrastructure failure is not
    #: dispatched before this time (epoch seconds; its back-off).
    retry_at: float | None = None
    #: Attempts whose assignment summit withdrew before the builder claimed it (a task ahead
    #: in the queue took the slot): they are not tries, and do not count towards the bound.
    withdrawn: int = 0

    @property
    def assigned(self) -> bool:
        """Ready and given to a builder, which has not claimed it yet."""
        return self.state is TaskState.READY and self.builder is not None

    @property
    def tries(self) -> int:
        """Attempts that were tries (the withdrawn ones are not): what the bound counts."""
        return self.attempt - self.withdrawn


@dataclass(frozen=True, slots=True)
class Reaction:
    """A reaction's result: the task's new record, what to emit (in order), and a line for
    the task's timeline when something happened that did not change it (a refused claim, a
    late report)."""

    task: Task
    emits: tuple[Emit, ...] = ()
    changed: bool = True
    note: str | None = None


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


def task_ready(task: Task, repo: RepoRef, critical_path: int,
               limits: BuildLimits | None = None) -> TaskReady:
    """The ``task-ready`` payload that assigns ``task`` to its builder, with the limits its
    build runs under (``None``: the builder's own)."""
    assert task.builder is not None, "only an assigned task is sent to a builder"
    return TaskReady(
        task_id=task.task_id, attempt=task.attempt, builder=task.builder, source=task.source,
        version=task.version, release=task.release, arch=task.arch, repository=repo.name,
        repository_url=repo.url, commit=task.commit, recipe_path=task.recipe_path or ".",
        channel=repo.channel, build_release=task.build_release, reason=str(task.reason),
        critical_path=max(critical_path, 0), priority=task.priority, index_url=repo.index_url,
        environment=repo.environment,
        limits=limits,
    )


def task_cancelled(task: Task, reason: str) -> TaskCancelled | None:
    """What tells the builder that holds ``task`` to stop it; ``None`` when no builder does."""
    if task.builder is None:
        return None
    return TaskCancelled(task_id=task.task_id, builder=task.builder, arch=task.arch,
                         attempt=task.attempt, reason=reason)


def _unchanged(task: Task, note: str | None = None, emits: tuple[Emit, ...] = ()) -> Reaction:
    return Reaction(task=task, changed=False, note=note, emits=emits)


def assign(task: Task, builder: str, now: float, repo: RepoRef, critical_path: int,
           limits: BuildLimits | None = None) -> Reaction:
    """Give a ready, unassigned task to ``builder``."""
    if task.state is not TaskState.READY or task.builder is not None:
        return _unchanged(task)
    given = replace(task, builder=builder, assigned_at=now, retry_at=None)
    return Reaction(task=given, emits=(task_ready(given, repo, critical_path, limits),))


#: How the ``task-cancelled`` that withdraws an unclaimed assignment ends (a replay tells it
#: from the loss of a builder by it).
WITHDRAWN = "the assignment was withdrawn"


def withdraw(task: Task, why: str) -> Reaction:
    """Take back an assignment its builder has not claimed yet (a task ahead of it in the
    queue takes the slot): the task waits for a builder again as a new attempt, so the old
    attempt's claim is refused and the builder never starts it; it is told so at once. Not a
    failure: the attempt does not count towards the bound."""
    if not task.assigned:
        return _unchanged(task)
    stop = task_cancelled(task, f"{why}; {WITHDRAWN}")
    again = replace(task, attempt=task.attempt + 1, builder=None, assigned_at=None,
                    withdrawn=task.withdrawn + 1)
    return Reaction(task=again, emits=(stop,) if stop else (),
                    note=f"assignment to {task.builder} (attempt {task.attempt}) withdrawn "
                         f"before it started: {why}")


def reblock(task: Task, reasons: tuple[BlockReason, ...]) -> Reaction:
    """Re-planning found a ``ready`` task that cannot start after all (``reasons``): it is
    blocked again, as if it had never been ready, rather than left for its builder to fail
    as unresolvable or to build against a stale dependency. An assignment not claimed yet is
    withdrawn as a priority change withdraws one (:func:`withdraw`: the builder is told not
    to start it, and the attempt is not a try); a claimed task is ``building`` and is not
    touched here."""
    if task.state is not TaskState.READY or not reasons:
        return _unchanged(task)
    why = "it cannot start after all: " + "; ".join(
        f"{r.kind} {r.source or r.name or ','.join(r.members)}" for r in reasons)
    taken = withdraw(task, why)
    return Reaction(task=move(taken.task, TaskState.BLOCKED, blocked_by=reasons),
                    emits=taken.emits, note=taken.note)


def _refusal(task: Task, claim: BuildStarted) -> str:
    if task.state in (TaskState.CANCELLED, TaskState.SUPERSEDED, TaskState.FAILED):
        why = f": {task.failure}" if task.failure else ""
        return f"task {task.task_id} is {task.state}{why}"
    if task.state in (TaskState.COMPLETED, TaskState.PUBLISHING):
        return f"task {task.task_id} was already built ({task.state})"
    if claim.attempt != task.attempt or claim.builder != task.builder:
        holder = f"on {task.builder}" if task.builder else "waiting for a builder"
        return (f"attempt {claim.attempt} of task {task.task_id} is over; attempt "
                f"{task.attempt} is {holder}")
    return f"task {task.task_id} is {task.state}"


def on_build_started(task: Task, claim: BuildStarted) -> Reaction:
    """A builder claims its assignment: admitted only if the task is ready, assigned to that
    builder, at that attempt; otherwise the builder is told to drop it."""
    mine = claim.builder == task.builder and claim.attempt == task.attempt
    admitted = BuildAdmitted(task_id=task.task_id, attempt=claim.attempt,
                             builder=claim.builder, arch=task.arch)
    if mine and task.state is TaskState.READY:
        return Reaction(task=move(task, TaskState.BUILDING, assigned_at=None),
                        emits=(admitted,))
    if mine and task.state is TaskState.BUILDING:  # the same claim again
        return _unchanged(task, emits=(admitted,))
    why = _refusal(task, claim)
    refuse = TaskCancelled(task_id=task.task_id, builder=claim.builder, arch=task.arch,
                           attempt=claim.attempt, reason=why)
    return _unchanged(task, note=f"claim by {claim.builder} refused: {why}", emits=(refuse,))


def on_build_done(
    task: Task, event: BuildDone, owned: tuple[str, ...] | str,
    published_release: int | None = None, max_attempts: int = MAX_ATTEMPTS,
    retry_at: float | None = None,
) -> Reaction:
    """The current attempt's report: success goes to vessel (``build-accepted``) unless a
    newer release was published meanwhile or a package is not the source's to publish
    (``owned`` is the names it may publish, or why not); infrastructure (or an unasked
    cancel) → another attempt until ``max_attempts``, then failed; any other outcome →
    failed. A report of another attempt or builder changes nothing. Another attempt waits
    until ``retry_at`` (``None``: none)."""
    if (task.state is not TaskState.BUILDING or event.attempt != task.attempt
            or event.builder != task.builder):
        return _unchanged(task, note=f"report of attempt {event.attempt} from "
                          f"{event.builder} ignored: the task is {task.state}, attempt "
                          f"{task.attempt}" + (f" on {task.builder}" if task.builder else ""))
    if event.outcome is Outcome.SUCCESS:
        if published_release is not None and published_release >= task.release:
            return Reaction(task=move(task, TaskState.SUPERSEDED, failure=(
                f"release {published_release} of {task.source} was published while "
                f"release {task.release} was building")))
        if isinstance(owned, str):
            return Reaction(task=move(task, TaskState.FAILED, failure=owned))
        accepted = BuildAccepted(task_id=task.task_id, attempt=task.attempt,
                                 packages=list(owned), build=build_done_v2(event))
        return Reaction(task=move(task, TaskState.PUBLISHING), emits=(accepted,))
    retryable = event.outcome in (Outcome.INFRASTRUCTURE, Outcome.CANCELLED)
    why = f"{event.outcome}: {event.reason}" if event.reason else str(event.outcome)
    return _retry_or_fail(task, retryable, why, max_attempts, retry_at)


def on_publish_failed(task: Task, event: PublishFailed, max_attempts: int = MAX_ATTEMPTS,
                      retry_at: float | None = None) -> Reaction:
    """Vessel could not import: a retryable cause rebuilds (bounded), anything else fails."""
    if task.state is not TaskState.PUBLISHING:
        return _unchanged(task)
    why = f"publish failed: {event.reason}"
    return _retry_or_fail(task, event.retryable, why, max_attempts, retry_at)


def on_package_published(task: Task, event: PackagePublished) -> Reaction:
    """The build is in the index: the task is completed."""
    if task.state is not TaskState.PUBLISHING:
        return _unchanged(task)
    return Reaction(task=move(task, TaskState.COMPLETED))


def lose(task: Task, why: str, max_attempts: int = MAX_ATTEMPTS,
         retry_at: float | None = None) -> Reaction:
    """The builder holding the task is gone (or never claimed it): another attempt, bounded
    like any infrastructure failure. The old builder is told to stop, should it come back."""
    if task.state is not TaskState.BUILDING and not task.assigned:
        return _unchanged(task)
    stop = task_cancelled(task, f"{why}; the task was given to another attempt")
    reaction = _retry_or_fail(task, True, why, max_attempts, retry_at)
    return replace(reaction, emits=(*reaction.emits, *((stop,) if stop else ())))


def supersede_running(task: Task, release: int) -> Reaction:
    """A newer release of the source was published while this one builds: stop it."""
    if task.state is not TaskState.BUILDING or release < task.release:
        return _unchanged(task)
    why = f"release {release} of {task.source} was published while release " \
          f"{task.release} was building"
    stop = task_cancelled(task, why)
    return Reaction(task=move(task, TaskState.SUPERSEDED, failure=why),
                    emits=(stop,) if stop else ())


def _retry_or_fail(current: Task, retryable: bool, why: str, max_attempts: int,
                   retry_at: float | None = None) -> Reaction:
    if retryable and current.tries < max_attempts:
        again = replace(current, state=TaskState.READY, attempt=current.attempt + 1,
                        builder=None, assigned_at=None, failure=why, retry_at=retry_at)
        if current.state is not TaskState.READY:
            check_transition(current, TaskState.READY)
        return Reaction(task=again)
    if retryable:
        why = f"{why} (gave up after {current.tries} attempts)"
    return Reaction(task=move(current, TaskState.FAILED, failure=why))
