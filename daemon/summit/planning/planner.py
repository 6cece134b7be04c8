"""Summit's planner: the planning rules over an incrementally maintained graph.

A build is missing when the recipe's release is above what the channel published for its
source and no open task exists for that release; a newer release supersedes a task that
has not started; a task waits for the open tasks of its build dependencies' providers;
cycles build against a published member; a failed task blocks its dependents until a
later build of its source is published.

One :class:`Planner` per (repository, arch). It holds the recipe graph, the published index
and the tasks in memory, and every call returns a :class:`Decision` (task records to store,
payloads to emit through the outbox) without doing any I/O. Work is proportional to what
changed: a commit touching ten recipes re-resolves those recipes and the users of the names
whose providers changed; a publication re-evaluates the dependents of that source.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from copy import copy
from dataclasses import dataclass, field, replace

from daemon.summit.planning.collector import collector_paused
from daemon.summit.planning.graph import PublishedIndex, RecipeGraph
from daemon.summit.planning.limits import NO_LIMITS, LimitRules
from daemon.summit.planning.ownership import check_packages
from daemon.summit.planning.rebuild import rebuilds
from daemon.summit.planning.recipe import BrokenRecipe
from daemon.summit.planning.schedule import Schedule
from daemon.summit.planning.states import (
    MAX_ATTEMPTS,
    NO_BACKOFF,
    NOT_STARTED,
    PENDING,
    TRANSITIONS,
    Backoff,
    BlockKind,
    Emit,
    Reaction,
    RepoRef,
    Task,
    TaskReason,
    TaskState,
    assign,
    lose,
    move,
    on_build_done,
    on_build_started,
    on_package_published,
    on_publish_failed,
    reblock,
    supersede_running,
    task_cancelled,
    withdraw,
)
from daemon.summit.planning.tree import RecipeDelta, RecipeEntry, RecipeTree
from events.errors import CairnError
from events.payloads import (
    BuildDone,
    BuildStarted,
    PackagePublished,
    Payload,
    PublishFailed,
)

#: Package name → the sources (of every planner of the arch) that declare it.
DeclaredBy = Callable[[str], Collection[str]]

#: Why the planner itself cancels a task. Only the recipe asked for these cancellations, so
#: when a later commit (the branch moved back, then forward again) asks for that release
#: again, the build is missing again and a new task is made; an operator's cancel stays.
RECIPE_REMOVED = "its recipe was removed"
RELEASE_NOT_WANTED = "its recipe no longer asks for this release"
RETRACTED = frozenset({RECIPE_REMOVED, RELEASE_NOT_WANTED})


class TaskIds:
    """The one allocator of task ids for every planner of a summit (ids are unique across
    repositories and arches, because builders, vessel and the API know a task by its id)."""

    def __init__(self, last: int = 0) -> None:
        self.last = last

    def seen(self, task_id: int) -> None:
        """An id already in use (a stored task): never hand it out again."""
        self.last = max(self.last, task_id)

    def next(self) -> int:
        self.last += 1
        return self.last


class PlanError(CairnError):
    """An operator request the planner cannot honour (retrying a task that did not fail...)."""


@dataclass(frozen=True, slots=True)
class Decision:
    """What one call decided: task records to upsert, payloads to emit (in order), the tasks
    that became ready for a builder (largest critical path first), and timeline notes about
    tasks that did not change (a refused claim, a late report)."""

    tasks: tuple[Task, ...] = ()
    emits: tuple[Emit, ...] = ()
    problems: tuple[BrokenRecipe, ...] = ()
    ready: tuple[Task, ...] = ()
    notes: tuple[tuple[int, str], ...] = ()


@dataclass(slots=True)
class _Batch:
    changed: dict[int, Task] = field(default_factory=dict)
    affected: set[str] = field(default_factory=set)
    emits: list[Emit] = field(default_factory=list)
    ready: list[int] = field(default_factory=list)
    problems: list[BrokenRecipe] = field(default_factory=list)
    notes: list[tuple[int, str]] = field(default_factory=list)


class Planner:
    """The planning state of one repository and arch; every method returns a Decision."""

    def __init__(
        self,
        repo: RepoRef,
        published: PublishedIndex | None = None,
        tasks: Iterable[Task] = (),
        *,
        ids: TaskIds | None = None,
        max_attempts: int = MAX_ATTEMPTS,
        limits: LimitRules = NO_LIMITS,
        backoff: Backoff = NO_BACKOFF,
        environment_provides: Iterable[str] = (),
    ) -> None:
        self.repo = repo
        self.graph = RecipeGraph()
        self.published = published if published is not None else PublishedIndex()
        self.max_attempts = max_attempts
        self.limits = limits
        self.backoff = backoff
        self.commit = ""
        self._tasks: dict[int, Task] = {}
        self._latest: dict[str, int] = {}
        self._by_release: dict[tuple[str, int], int] = {}
        self._of_source: dict[str, list[int]] = {}
        self._problems: dict[str, tuple[BrokenRecipe, ...]] = {}
        self.schedule = Schedule(self.graph, self.published, self._pending, self._not_started)
        self.schedule.set_environment(environment_provides)
        for task in sorted(tasks, key=lambda t: t.task_id):
            self._store(task)
        #: Task ids are unique across every planner of a summit: they share one allocator.
        self.ids = ids if ids is not None else TaskIds()
        self.ids.seen(max(self._tasks, default=0))

    # -- queries -----------------------------------------------------------------------
    @property
    def tasks(self) -> Mapping[int, Task]:
        return self._tasks

    def of_source(self, source: str) -> list[Task]:
        """Every task of ``source``, oldest first."""
        return [self._tasks[i] for i in self._of_source.get(source, ())]

    def latest(self, source: str) -> Task | None:
        task_id = self._latest.get(source)
        return None if task_id is None else self._tasks[task_id]

    def open_tasks(self) -> list[Task]:
        """The latest task of every source whose build is still to come."""
        return [self._tasks[i] for i in self._latest.values() if self._tasks[i].state in PENDING]

    @property
    def problems(self) -> tuple[BrokenRecipe, ...]:
        return tuple(p for path in sorted(self._problems) for p in self._problems[path])

    def critical_path(self, source: str) -> int:
        return self.schedule.cp.get(source, 0)

    def waves(self) -> list[list[str]]:
        """Build waves assuming every build succeeds (see :meth:`Schedule.waves`)."""
        blocked = {s for s in self._latest if self._hard_blocked(s)}
        return self.schedule.waves(self._latest, blocked)

    def snapshot(self) -> Planner:
        """A copy to read in another thread while this planner goes on changing: its maps
        are copied (tasks are immutable, so shared). The recipe graph and the published
        index are shared, not copied: reads of tasks, waves, edges and critical paths do
        not use them, and a snapshot is never planned with."""
        twin = copy(self)
        twin._tasks = dict(self._tasks)
        twin._latest = dict(self._latest)
        twin._by_release = dict(self._by_release)
        twin._of_source = {s: list(ids) for s, ids in self._of_source.items()}
        twin._problems = dict(self._problems)
        twin.schedule = self.schedule.snapshot(twin._pending, twin._not_started)
        return twin

    def _hard_blocked(self, source: str) -> bool:
        task = self.latest(source)
        return task is not None and any(
            r.kind is not BlockKind.DEPENDENCY for r in task.blocked_by
        )

    # -- planning ----------------------------------------------------------------------
    def plan_tree(self, tree: RecipeTree) -> Decision:
        """Plan a whole tree: first sight of a repository, or a restart from stored tasks.
        The collector is paused meanwhile (:mod:`.collector`): a tree's graph and tasks are
        hundreds of thousands of new containers, and it ran full collections of the heap
        as they were made."""
        gone = tuple(p for p in self.graph.by_path if p not in tree.entries)
        stale = tuple(p for p in self._problems if p not in tree.entries)
        with collector_paused():
            return self._apply(tree.commit, tree.entries, gone + stale)

    def plan_delta(self, delta: RecipeDelta) -> Decision:
        """Plan what a commit changed (the tree diff between the old and the new commit)."""
        return self._apply(delta.new_commit, delta.changed, delta.deleted)

    def _apply(
        self, commit: str, entries: Mapping[str, RecipeEntry], deleted: Iterable[str]
    ) -> Decision:
        batch = _Batch()
        self.commit = commit
        for path in deleted:
            self._problems.pop(path, None)
            self._remove_path(path, batch)
        for path, entry in entries.items():
            self._problems.pop(path, None)
            if entry.problems:
                self._problems[path] = entry.problems
                batch.problems.extend(entry.problems)
            if entry.recipe is not None:
                self._put_entry(entry, commit, batch)
        return self._settle(batch)

    def _remove_path(self, path: str, batch: _Batch) -> None:
        source, lost = self.graph.remove_path(path)
        if source is None:
            return
        batch.affected |= self.graph.users_of(lost)
        task = self.latest(source)
        if task is not None and task.state in NOT_STARTED:
            self._cancel(task, RECIPE_REMOVED, batch)

    def _put_entry(self, entry: RecipeEntry, commit: str, batch: _Batch) -> None:
        assert entry.recipe is not None
        previous = self.graph.by_path.get(entry.path)
        if previous is not None and previous != entry.recipe.name:
            self._remove_path(entry.path, batch)
        changed, problem = self.graph.put(entry)
        if problem is not None:
            self._problems[entry.path] = (*self._problems.get(entry.path, ()), problem)
            batch.problems.append(problem)
            return
        batch.affected |= self.graph.users_of(changed)
        batch.affected.add(entry.recipe.name)
        self._plan_source(entry.recipe.name, commit, batch)

    def _plan_source(self, source: str, commit: str, batch: _Batch) -> None:
        """The missing-build rule, with supersede, for one source's current recipe."""
        recipe = self.graph.recipes[source]
        latest = self.latest(source)
        published = self.published.releases.get(source)
        wanted = recipe.builds_for(self.repo.arch) and (
            published is None or recipe.release > published
        )
        superseding = False
        if latest is not None and latest.state in NOT_STARTED and latest.release != recipe.release:
            if wanted and latest.release < recipe.release:
                self._put(move(latest, TaskState.SUPERSEDED), batch, cancel=latest)
                superseding = True
            else:
                self._cancel(latest, RELEASE_NOT_WANTED, batch)
        if not wanted:
            return
        existing = self._by_release.get((source, recipe.release))
        if existing is not None and self._retracted(self._tasks[existing]):
            existing = None
        if existing is not None:
            task = self._tasks[existing]
            if task.state in (TaskState.NEW, TaskState.BLOCKED) and task.commit != commit:
                self._put(replace(task, commit=commit, version=recipe.version,
                                  recipe_path=recipe.path), batch)
            return
        if superseding:
            reason = TaskReason.SUPERSEDED
        else:
            reason = TaskReason.NEW if published is None else TaskReason.RELEASE_BUMP
        self._create(source, reason, commit, batch)

    @staticmethod
    def _retracted(task: Task) -> bool:
        """Cancelled by the planner because a commit no longer asked for it: not an answer
        to the recipe asking for that release again."""
        return task.state is TaskState.CANCELLED and task.failure in RETRACTED

    def _create(self, source: str, reason: TaskReason, commit: str, batch: _Batch,
                build_release: int = 1) -> Task:
        recipe = self.graph.recipes[source]
        task = Task(
            task_id=self.ids.next(), source=source, version=recipe.version,
            release=recipe.release, recipe_path=recipe.path, commit=commit,
            repository=self.repo.name, arch=self.repo.arch, reason=reason,
            priority=self.repo.priority, build_release=build_release,
        )
        self._put(task, batch)
        return task

    # -- events ------------------------------------------------------------------------
    def handle(self, payload: Payload, declared_by: DeclaredBy | None = None,
               now: float | None = None) -> Decision:
        """Dispatch any event summit consumes; other payloads decide nothing. ``now``
        (epoch seconds) starts the back-off of a retried attempt; ``None``: no back-off."""
        if isinstance(payload, BuildStarted):
            return self.on_build_started(payload)
        if isinstance(payload, BuildDone):
            return self.on_build_done(payload, declared_by, now)
        if isinstance(payload, PackagePublished):
            return self.on_package_published(payload)
        if isinstance(payload, PublishFailed):
            return self.on_publish_failed(payload, now)
        return Decision()

    def _retry_at(self, task: Task, now: float | None) -> float | None:
        """When another attempt of ``task`` may start, should it get one."""
        return None if now is None else now + self.backoff.delay(task.tries)

    def on_build_started(self, event: BuildStarted) -> Decision:
        task = self._own(event.task_id, event.arch)
        return Decision() if task is None else self._react(on_build_started(task, event))

    def on_build_done(self, event: BuildDone, declared_by: DeclaredBy | None = None,
                      now: float | None = None) -> Decision:
        task = self._own(event.task_id, event.arch)
        if task is None:
            return Decision()
        names = [a.name for a in event.artefacts]
        owned = check_packages(task.source, names, declared_by or self.graph.declared_by)
        published = self.published.releases.get(task.source)
        return self._react(on_build_done(task, event, owned, published, self.max_attempts,
                                         self._retry_at(task, now)))

    def on_publish_failed(self, event: PublishFailed, now: float | None = None) -> Decision:
        task = self._own(event.task_id, event.arch)
        if task is None:
            return Decision()
        return self._react(on_publish_failed(task, event, self.max_attempts,
                                             self._retry_at(task, now)))

    def on_package_published(self, event: PackagePublished) -> Decision:
        """Complete the task, add the providers, unblock whatever waited for them, and stop
        an older release of the source still building (it is superseded)."""
        batch = _Batch()
        if event.channel == self.repo.channel and event.arch == self.repo.arch:
            names = [n for p in event.packages for n in (p.name, *p.provides)]
            before = self.published.releases.get(event.source)
            new_names = self.published.add(event.source, event.release, names)
            if new_names or before != self.published.releases.get(event.source):
                batch.affected |= self.graph.users_of(new_names)
                batch.affected |= self.graph.dependents(event.source)
                batch.affected.add(event.source)
            for older in self._building(event.source):
                if older.task_id != event.task_id:
                    self._apply_reaction(supersede_running(older, event.release), batch)
        task = self._own(event.task_id, event.arch)
        if task is not None and task.source == event.source:
            self._apply_reaction(on_package_published(task, event), batch)
        return self._settle(batch)

    def _building(self, source: str) -> list[Task]:
        return [self._tasks[i] for i in self._of_source.get(source, ())
                if self._tasks[i].state is TaskState.BUILDING]

    def _own(self, task_id: int, arch: str) -> Task | None:
        task = self._tasks.get(task_id)
        return task if task is not None and task.arch == arch else None

    def _apply_reaction(self, reaction: Reaction, batch: _Batch) -> None:
        if reaction.changed:
            self._put(reaction.task, batch)
            if reaction.task.state is TaskState.READY and reaction.task.builder is None:
                batch.ready.append(reaction.task.task_id)
        if reaction.note:
            batch.notes.append((reaction.task.task_id, reaction.note))
        batch.emits.extend(reaction.emits)

    def _react(self, reaction: Reaction) -> Decision:
        batch = _Batch()
        self._apply_reaction(reaction, batch)
        return self._settle(batch)

    # -- dispatch ----------------------------------------------------------------------
    def assign(self, task_id: int, builder: str, now: float) -> Decision:
        """Give a ready task to ``builder`` (the dispatcher chose it)."""
        task = self._tasks.get(task_id)
        if task is None:
            return Decision()
        cp = self.critical_path(task.source)
        limits = self.limits.for_task(task.repository, task.source)
        return self._react(assign(task, builder, now, self.repo, cp, limits))

    def lose(self, task_id: int, why: str, now: float | None = None) -> Decision:
        """The builder holding the task is lost or never claimed it: another attempt (after
        its back-off, counted from ``now``)."""
        task = self._tasks.get(task_id)
        if task is None:
            return Decision()
        return self._react(lose(task, why, self.max_attempts, self._retry_at(task, now)))

    def withdraw(self, task_id: int, why: str) -> Decision:
        """Take back an assignment not claimed yet: the task waits for a builder again."""
        task = self._tasks.get(task_id)
        return Decision() if task is None else self._react(withdraw(task, why))

    def fail(self, task_id: int, reason: str) -> Decision:
        """Fail a task for a reason outside any build report (it kept killing builders, and
        the broker dead-lettered it); dependents are blocked as for any failure."""
        task = self._tasks.get(task_id)
        if task is None or TaskState.FAILED not in TRANSITIONS[task.state]:
            return Decision()
        return self._react(Reaction(task=move(task, TaskState.FAILED, failure=reason)))

    # -- operator requests -------------------------------------------------------------
    def retry(self, task_id: int) -> Decision:
        """A new task (reason ``retry``) for the source of a failed task, or of one an
        operator cancelled (to build it again later)."""
        task = self._tasks.get(task_id)
        if task is None:
            raise PlanError(f"there is no task {task_id}")
        if task.state not in (TaskState.FAILED, TaskState.CANCELLED):
            raise PlanError(f"task {task_id} is {task.state}; only failed or cancelled tasks "
                            "can be retried")
        latest = self.latest(task.source)
        if latest is not None and latest.task_id != task_id and latest.state in PENDING:
            raise PlanError(f"{task.source} already has task {latest.task_id} ({latest.state})")
        if task.source not in self.graph.recipes:
            raise PlanError(f"{task.source} has no recipe any more: nothing to retry")
        batch = _Batch()
        self._create(task.source, TaskReason.RETRY, self.commit or task.commit, batch)
        return self._settle(batch)

    def use_environment(self, environment: str | None,
                        provides: Iterable[str] = ()) -> Decision:
        """An operator points the repository at ``environment`` (which ``provides`` those
        names): what is built is built again in it (:mod:`.rebuild`), reason "build
        environment changed"."""
        self.repo = replace(self.repo, environment=environment)
        batch = self._environment_provides(provides)
        for rebuild in rebuilds(self.graph.recipes, self.repo.arch, self.published,
                                self.latest, self.of_source):
            if rebuild.cancel is not None:
                self._cancel(rebuild.cancel, "its repository's build environment changed",
                             batch)
            self._create(rebuild.source, TaskReason.ENVIRONMENT_CHANGED,
                         self.commit or "", batch, rebuild.build_release)
        return self._settle(batch)

    def environment_known(self, provides: Iterable[str]) -> Decision:
        """What the repository's environment provides is known (or changed): tasks blocked
        on a name only it provides become ready, and the other way round."""
        return self._settle(self._environment_provides(provides))

    def _environment_provides(self, provides: Iterable[str]) -> _Batch:
        batch = _Batch()
        self.schedule.set_environment(provides)
        batch.affected |= {s for s, r in self.graph.recipes.items() if r.build_deps}
        return batch

    def cancel(self, task_id: int, reason: str = "cancelled by an operator") -> Decision:
        task = self._tasks.get(task_id)
        if task is None:
            raise PlanError(f"there is no task {task_id}")
        if TaskState.CANCELLED not in TRANSITIONS[task.state]:
            raise PlanError(f"task {task_id} is {task.state} and cannot be cancelled")
        batch = _Batch()
        self._cancel(task, reason, batch)
        return self._settle(batch)

    def prioritise(self, task_id: int, priority: int) -> Decision:
        """Set the priority of a task not yet building (ready ones included: an assigned one
        keeps its builder, the others are dispatched in the new order)."""
        task = self._tasks.get(task_id)
        if task is None:
            raise PlanError(f"there is no task {task_id}")
        if task.state not in NOT_STARTED:
            raise PlanError(f"task {task_id} is {task.state}; only tasks not yet building "
                            "can change priority")
        if task.priority == priority:
            return Decision()
        return self._react(Reaction(task=replace(task, priority=priority)))

    # -- bookkeeping -------------------------------------------------------------------
    def _cancel(self, task: Task, reason: str, batch: _Batch) -> None:
        self._put(move(task, TaskState.CANCELLED, failure=reason), batch, cancel=task)

    def _put(self, task: Task, batch: _Batch, cancel: Task | None = None) -> None:
        """Store a task record; when its source's standing as a provider changes (pending,
        failed, gone) its dependents are re-evaluated, when only whether it has started
        changes, the source alone."""
        before = self._standing(task.source)
        self._store(task)
        batch.changed[task.task_id] = task
        if cancel is not None and cancel.state in (TaskState.READY, TaskState.BUILDING):
            stop = task_cancelled(cancel, task.failure or str(task.state))
            if stop is not None:
                batch.emits.append(stop)
        after = self._standing(task.source)
        if before[0::2] != after[0::2]:  # pending or failed: what its dependents wait on
            batch.affected |= self.graph.dependents(task.source)
            batch.affected.add(task.source)
        elif before != after:
            # Started (or back to waiting): only its own edges change; its dependents wait
            # for it as before. A core library starting used to re-plan its thousands.
            batch.affected.add(task.source)

    def _store(self, task: Task) -> None:
        if task.task_id not in self._tasks:
            self._of_source.setdefault(task.source, []).append(task.task_id)
        self._tasks[task.task_id] = task
        if task.task_id >= self._latest.get(task.source, 0):
            self._latest[task.source] = task.task_id
        key = (task.source, task.release)
        if task.state is TaskState.SUPERSEDED:
            if self._by_release.get(key) == task.task_id:
                del self._by_release[key]
        elif task.task_id >= self._by_release.get(key, 0):
            self._by_release[key] = task.task_id

    def _standing(self, source: str) -> tuple[bool, bool, bool]:
        task = self.latest(source)
        if task is None:
            return (False, False, False)
        return (task.state in PENDING, task.state in NOT_STARTED, task.state is TaskState.FAILED)

    def _pending(self, source: str) -> Task | None:
        task = self.latest(source)
        return task if task is not None and task.state in PENDING else None

    def _not_started(self, source: str) -> Task | None:
        task = self.latest(source)
        return task if task is not None and task.state in NOT_STARTED else None

    def _settle(self, batch: _Batch) -> Decision:
        """Re-evaluate what the batch touched: edges, cycles, blocked/ready, critical paths."""
        # Sources that never had a task are in no pending graph: nothing to re-evaluate.
        affected = [s for s in batch.affected if s in self._latest]
        statuses = self.schedule.update(affected, self.latest)
        for source, reasons in statuses.items():
            task = self._not_started(source)
            if task is None:
                continue
            if task.state is TaskState.READY:
                self._apply_reaction(reblock(task, reasons), batch)
                continue
            if reasons:
                if task.state is not TaskState.BLOCKED:
                    self._put(move(task, TaskState.BLOCKED, blocked_by=reasons), batch)
                elif task.blocked_by != reasons:
                    self._put(replace(task, blocked_by=reasons), batch)
            else:
                ready = move(task, TaskState.READY, blocked_by=())
                self._put(ready, batch)
                batch.ready.append(ready.task_id)
        return self._decision(batch)

    def _decision(self, batch: _Batch) -> Decision:
        ready = [self._tasks[i] for i in dict.fromkeys(batch.ready)]
        ready = [t for t in ready if t.state is TaskState.READY and t.builder is None]
        ready.sort(key=lambda t: (-self.critical_path(t.source), t.source))
        return Decision(
            tasks=tuple(self._tasks[i] for i in batch.changed),
            emits=tuple(batch.emits),
            problems=tuple(batch.problems),
            ready=tuple(ready),
            notes=tuple(batch.notes),
        )
