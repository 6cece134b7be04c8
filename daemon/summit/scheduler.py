"""Summit's scheduler: events in, the planners' decisions stored and emitted, ready tasks
assigned to builders.

It is a shell around :class:`daemon.summit.planning.planner.Planner` (one per repository and
arch) and the pure dispatcher (:mod:`daemon.summit.planning.dispatch`): every event handler
claims the event in the inbox, asks a planner for a decision, assigns whatever the decision
made ready to builders with free slots, and writes the task records and the events to emit
(through the outbox) in that same transaction. A publication therefore dispatches its
dependents the moment it is handled: there is no polling between a ``package-published``
and the next ``task-ready``.

Builders report themselves (``builder-seen``); :meth:`Scheduler.tick` gives the tasks of a
builder not heard from for its grace period, or an assignment not claimed in time, to
another attempt.

Planner calls are serialised by one lock. If a transaction fails after a planner decided,
the planners are rebuilt from the database so memory never runs ahead of what is stored.

Events delivered together (a burst: the consumer's prefetch holds up to 64) are handled in
one transaction (:class:`events.groupcommit.GroupCommit`), each with its own inbox claim,
decisions, timeline and outbox rows as if alone, in delivery order: one ``BEGIN``/``COMMIT``
and one wake-up of the relay per burst instead of per event, which was most of summit's
time in a mass rebuild. No acknowledged event can be lost on a crash: a handler returns (and
the bus acknowledges its event) only after the transaction holding it committed, and a
commit is durable across a process crash (WAL); a crash before the ``COMMIT`` acknowledged
none of the burst, whose events the broker delivers again. A burst whose transaction fails
rebuilds the planners and handles each event alone, so one bad event fails alone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog

from daemon.summit import store
from daemon.summit.envprovides import EnvironmentCatalogue
from daemon.summit.estimates import Learned
from daemon.summit.gitrepo import RepoConfig
from daemon.summit.mirrors import Mirrors
from daemon.summit.planning.constraints import NO_CONSTRAINTS, Constraints
from daemon.summit.planning.dispatch import dispatch, overtaken
from daemon.summit.planning.fleet import Fleet
from daemon.summit.planning.levers import Levers
from daemon.summit.planning.limits import NO_LIMITS, LimitRules
from daemon.summit.planning.planner import Decision, PlanError, Planner, TaskIds
from daemon.summit.planning.states import (
    MAX_ATTEMPTS,
    NO_BACKOFF,
    Backoff,
    RepoRef,
    Task,
    TaskState,
)
from daemon.summit.reading import SchedulerReading
from events import inbox, outbox
from events import payloads as p
from events.envelope import Event, new_event
from events.errors import CairnError
from events.groupcommit import GroupCommit
from events.outbox import OutboxRelay
from events.sqlite import Connection, Database

log = structlog.get_logger("cairn.summit")

CONSUMER = "summit"
SOURCE = "cairn/summit"
#: How long an assigned task may wait for its builder's claim before another attempt.
CLAIM_TIMEOUT_S = 60.0


class SchedulerObserver:
    """What the scheduler tells its metrics; the base class ignores it all."""

    def dispatched(self, count: int) -> None:
        """``count`` tasks were assigned in one dispatch."""

    def waited(self, seconds: float, constraint_class: str) -> None:
        """A task started building ``seconds`` after it became ready."""


class Scheduler(SchedulerReading):
    """Every planner of a summit, the events that feed them, and what they decide."""

    def __init__(self, db: Database, relay: OutboxRelay, repos: Mapping[str, RepoConfig],
                 mirrors: Mirrors, channel: str, index_url: Callable[[str], str | None],
                 max_attempts: int = MAX_ATTEMPTS, claim_timeout: float = CLAIM_TIMEOUT_S,
                 clock: Callable[[], float] = time.time,
                 hearing: Callable[[], Awaitable[bool]] | None = None,
                 dispatching: bool = True, constraints: Constraints = NO_CONSTRAINTS,
                 priorities: Mapping[str, int] | None = None,
                 observer: SchedulerObserver | None = None,
                 limits: LimitRules = NO_LIMITS, backoff: Backoff = NO_BACKOFF,
                 catalogue: EnvironmentCatalogue | None = None) -> None:
        self.db = db
        self.relay = relay
        self.repos = repos
        self.mirrors = mirrors
        self.channel = channel
        self.index_url = index_url
        self.max_attempts = max_attempts
        self.claim_timeout = claim_timeout
        self.clock = clock
        #: Whether summit can hear builders now (its bus is connected).
        self.hearing = hearing
        #: Off when replaying a recording: its assignments are replayed instead of made
        #: again (which builder was free when is a matter of timing, not of the events).
        self.dispatching = dispatching
        self.constraints = constraints
        #: The limits each build runs under (per repository, per source pattern).
        self.limits = limits
        #: How long an infrastructure failure waits before its next attempt.
        self.backoff = backoff
        #: Each repository's base priority (its new tasks start with it).
        self.priorities = dict(priorities or {})
        self.observer = observer or SchedulerObserver()
        #: What each repository's build environment provides (read from vessel), and the
        #: planners still waiting to learn it.
        self.catalogue = catalogue or EnvironmentCatalogue(None)
        self._unprovided: set[tuple[str, str]] = set()
        self.levers = Levers()
        #: What the estimates learn: durations, running builds' starts, publishing time.
        self.learned = Learned()
        #: Source → peak memory (KiB) and disk (bytes) of its latest build that reported it.
        self._peaks: dict[str, int] = {}
        self._disk: dict[str, int] = {}
        #: When each ready task became ready (the start of its wait for a builder).
        self._ready_at: dict[int, float] = {}
        self.planners: dict[tuple[str, str], Planner] = {}
        #: Grows with every decision stored (and every reload): what is read from the
        #: planners (the queue graph, the root causes) is valid as long as it is unchanged.
        self.version = 0
        self.ids = TaskIds()
        self.fleet = Fleet()
        self._owner: dict[int, tuple[str, str]] = {}
        #: Ready tasks waiting for a builder, and who holds each assigned or building task.
        self._waiting: set[int] = set()
        self._holder: dict[int, str] = {}
        self.lock = asyncio.Lock()
        #: Events delivered together, applied in one transaction under the lock.
        self.bursts: GroupCommit[Event[Any], None] = GroupCommit(
            db, self._apply, guard=lambda: self.lock, undo=self._reload)

    # -- loading ---------------------------------------------------------------------------
    async def load(self) -> None:
        """(Re)build every planner from the database and the commits they had applied."""
        self.version += 1
        tasks = await store.load_tasks(self.db)
        self.ids = TaskIds(max((t.task_id for t in tasks), default=0))
        self.planners.clear()
        self._owner = {t.task_id: (t.repository, t.arch) for t in tasks}
        self._waiting.clear()
        self._holder.clear()
        self._ready_at.clear()
        self.levers = await store.load_levers(self.db)
        self.learned = Learned(durations=await store.learned_durations(self.db))
        self._peaks = await store.peak_memory(self.db)
        self._disk = await store.peak_disk(self.db)
        for task in tasks:
            self._track(task)
        self.fleet = Fleet()
        now = self.clock()
        for builder in await store.load_builders(self.db):
            self.fleet.restore(builder, now)
        environments = await self._environments()
        self._unprovided.clear()
        for repo in self.repos.values():
            provides = await self.catalogue.fetch(environments[repo.name])
            for arch in repo.arches:
                ref = RepoRef(repo.name, repo.url, arch, self.channel, self.index_url(arch),
                              self.priorities.get(repo.name, 0), environments[repo.name])
                published = await store.load_published(self.db, self.channel, arch)
                mine = [t for t in tasks if t.repository == repo.name and t.arch == arch]
                planner = Planner(ref, published, mine, ids=self.ids,
                                  max_attempts=self.max_attempts, limits=self.limits,
                                  backoff=self.backoff, environment_provides=provides or ())
                self.planners[(repo.name, arch)] = planner
                if provides is None:
                    self._unprovided.add((repo.name, arch))
                commit = await store.planned_commit(self.db, repo.name, arch)
                if commit is not None:
                    tree = await self.mirrors[repo.name].aread_tree(commit, arch)
                    await self.commit(planner, planner.plan_tree(tree), None)

    # -- applying decisions ----------------------------------------------------------------
    async def write(self, conn: Connection, planner: Planner, decision: Decision,
                    cause: Event[Any] | None) -> None:
        """Store a decision's tasks and timeline and queue its events, in ``conn``'s
        transaction."""
        self.version += 1
        for task in decision.tasks:
            self._owner[task.task_id] = (planner.repo.name, planner.repo.arch)
            self._track(task)
        await store.save_tasks(conn, decision.tasks)
        cause_id = cause.id if cause else None
        await store.add_timeline(conn, [
            *((t.task_id, cause_id, str(t.state), _summary(t)) for t in decision.tasks),
            *((task_id, cause_id, "note", note) for task_id, note in decision.notes)])
        for emit in decision.emits:
            await outbox.add(conn, new_event(emit, source=SOURCE, causation=cause))
        if decision.problems or cause is None or cause.type == "commit-seen":
            await store.set_recipe_errors(conn, planner.repo.name, planner.problems)

    def _track(self, task: Task) -> None:
        self.learned.observe(task, self.clock())
        self._time_wait(task)
        if task.state is TaskState.READY and task.builder is None:
            self._waiting.add(task.task_id)
        else:
            self._waiting.discard(task.task_id)
        if task.builder is not None and task.state in (TaskState.READY, TaskState.BUILDING):
            self._holder[task.task_id] = task.builder
        else:
            self._holder.pop(task.task_id, None)

    def _time_wait(self, task: Task) -> None:
        """Ready → building: how long the task waited for a builder (its last attempt)."""
        if task.state is TaskState.READY:
            self._ready_at.setdefault(task.task_id, self.clock())
            return
        since = self._ready_at.pop(task.task_id, None)
        if since is not None and task.state is TaskState.BUILDING:
            self.observer.waited(max(self.clock() - since, 0.0),
                                 self.needs(task).constraint_class)

    async def _dispatch(self, conn: Connection, cause: Event[Any] | None) -> None:
        """Assign ready tasks to builders with free slots (in ``conn``'s transaction)."""
        if not self._waiting or not self.dispatching:
            return
        now = self.clock()
        # A retried attempt waits out its back-off; tick() dispatches it once it is due.
        due = [t for t in self.waiting() if t.retry_at is None or t.retry_at <= now]
        assignments = dispatch(due, self.fleet.builders.values(), self.load_of(),
                               self.order(), self.needs, self.levers)
        for assignment in assignments:
            planner = self.planner_of(assignment.task.task_id)
            assert planner is not None
            decision = planner.assign(assignment.task.task_id, assignment.builder, now)
            await self.write(conn, planner, decision, cause)
        if assignments:
            self.observer.dispatched(len(assignments))

    async def _withdraw_overtaken(self, conn: Connection) -> None:
        """Priorities changed: assignments not claimed yet give their slots to tasks now
        ahead of them (in ``conn``'s transaction; :func:`dispatch` then assigns those)."""
        now = self.clock()
        due = [t for t in self.waiting() if t.retry_at is None or t.retry_at <= now]
        assigned = [t for t in map(self.task, list(self._holder)) if t is not None]
        for task in overtaken(due, assigned, self.fleet.builders.values(), self.load_of(),
                              self.order(), self.needs, self.levers):
            planner = self.planner_of(task.task_id)
            assert planner is not None
            why = "a task ahead of it in the queue (its priority changed) takes the slot"
            await self.write(conn, planner, planner.withdraw(task.task_id, why), None)

    async def commit(self, planner: Planner, decision: Decision,
                     cause: Event[Any] | None, reorder: bool = False) -> None:
        """Store a decision (and whatever can be dispatched after it) in a transaction of
        its own and wake the relay; ``reorder``: it changed priorities, so assignments not
        claimed yet are decided again."""
        async with self.db.transaction() as conn:
            await self.write(conn, planner, decision, cause)
            if reorder:
                await self._withdraw_overtaken(conn)
            await self._dispatch(conn, cause)
        self.relay.notify()

    async def _environments(self) -> dict[str, str | None]:
        """Each repository's build environment: the stored one; a repository seen for the
        first time takes its configured one. A configuration that names another environment
        later changes nothing by itself (nothing rebuilds by surprise): summit says so."""
        stored = await store.load_environments(self.db)
        for repo in self.repos.values():
            if repo.name not in stored:
                async with self.db.transaction() as conn:
                    await store.save_environment(conn, repo.name, repo.environment)
                stored[repo.name] = repo.environment
            elif stored[repo.name] != repo.environment:
                log.warning("summit.environment_not_applied", repository=repo.name,
                            configured=repo.environment, used=stored[repo.name],
                            hint=f"cairn recipes environment {repo.name} "
                                 f"{repo.environment or 'none'} applies it and rebuilds")
        return stored

    async def use_environment(self, repository: str, environment: str | None) -> list[Task]:
        """An operator points ``repository`` at ``environment``: stored, and every planner of
        the repository re-plans its builds in it; returns the tasks that changed."""
        provides = await self.catalogue.fetch(environment)
        async with self.lock:
            planners = [p for (name, _), p in sorted(self.planners.items())
                        if name == repository]
            if not planners:
                raise PlanError(f"there is no repository {repository!r}")
            changed: list[Task] = []
            try:
                async with self.db.transaction() as conn:
                    await store.save_environment(conn, repository, environment)
                    for planner in planners:
                        decision = planner.use_environment(environment, provides or ())
                        self._unprovided.discard((repository, planner.repo.arch))
                        if provides is None:
                            self._unprovided.add((repository, planner.repo.arch))
                        await self.write(conn, planner, decision, None)
                        changed.extend(decision.tasks)
                    await self._dispatch(conn, None)
            except BaseException:
                await self._reload()
                raise
            self.relay.notify()
            return changed

    async def _learn_provides(self) -> None:
        """Planners whose environment vessel could not describe before: ask again."""
        for key in sorted(self._unprovided):
            planner = self.planners.get(key)
            provides = await self.catalogue.fetch(planner.repo.environment if planner else None)
            if planner is None or provides is None:
                continue
            async with self.lock:
                if self.planners.get(key) is not planner or key not in self._unprovided:
                    continue
                try:
                    async with self.db.transaction() as conn:
                        await self.write(conn, planner, planner.environment_known(provides),
                                         None)
                        await self._dispatch(conn, None)
                except BaseException:
                    await self._reload()
                    raise
                self._unprovided.discard(key)
            self.relay.notify()

    async def decide(self, task_id: int, decide: Callable[[Planner], Decision],
                     reorder: bool = False) -> Planner:
        """Apply one decision about a task (an operator's request, a dead letter) under the
        lock; the planners are rebuilt if storing it fails. ``reorder``: see :meth:`commit`."""
        async with self.lock:
            planner = self.planner_of(task_id)
            if planner is None:
                raise PlanError(f"there is no task {task_id}")
            try:
                await self.commit(planner, decide(planner), None, reorder)
            except BaseException:
                await self._reload()
                raise
            return planner

    async def steer(self, change: Callable[[Levers], Levers]) -> Levers:
        """Move a lever (pause, resume, drain, enable): stored, then whatever it frees is
        dispatched, in one transaction."""
        async with self.lock:
            try:
                async with self.db.transaction() as conn:
                    self.levers = change(self.levers)
                    await store.save_levers(conn, self.levers)
                    await self._dispatch(conn, None)
            except BaseException:
                await self._reload()
                raise
        self.relay.notify()
        return self.levers

    async def _reload(self) -> None:
        log.warning("summit.reloading_planners")
        await self.load()

    # -- events ----------------------------------------------------------------------------
    async def handle(self, event: Event[Any]) -> None:
        """Every event summit consumes; a duplicate (same id) changes nothing.

        A commit is planned before its transaction claims it (reading its tree is slow, and
        done outside any burst), so a duplicate is turned away first; every other event
        joins the burst being delivered (see the module docstring) and claims its id there,
        before changing anything, with no read of its own (one per event, a tenth of
        summit's time in a mass rebuild). Returns once the event's effect is committed."""
        if not isinstance(event.data, p.CommitSeen):
            await self.bursts.submit(event)
            self.relay.notify()
            return
        if await inbox.seen(self.db, CONSUMER, event.id):
            return
        async with self.lock:
            try:
                await self._on_commit(event)
            except BaseException:
                await self._reload()
                raise
        self.relay.notify()

    async def _apply(self, conn: Connection, event: Event[Any]) -> None:
        """One event of a burst, in the burst's transaction (under the lock)."""
        if not await inbox.claim(conn, CONSUMER, event.id):
            return
        if isinstance(event.data, p.BuilderSeen):
            await self._on_builder_seen(conn, event)
        else:
            await self._on_build_event(conn, event)

    async def _on_build_event(self, conn: Connection, event: Event[Any]) -> None:
        data = event.data
        if isinstance(data, p.PackagePublished):
            names = [n for pkg in data.packages for n in (pkg.name, *pkg.provides)]
            await store.record_publication(conn, data.channel, data.arch, data.source,
                                           data.release, names)
            await store.record_generation(
                conn, data.channel, data.arch, data.generation, data.task_id, data.source,
                data.release, data.build_release, [pkg.name for pkg in data.packages])
        if isinstance(data, p.BuildDone):
            await store.record_build(conn, data)
            self._learn(data)
            if data.usage is not None and data.usage.max_rss_kb > 0:
                self._peaks[data.source] = data.usage.max_rss_kb
            if isinstance(data.usage, p.UsageV3) and data.usage.disk_bytes > 0:
                self._disk[data.source] = data.usage.disk_bytes
        for planner in self._planners_for(data):
            decision = planner.handle(data, self.declared_by(planner.repo.arch),
                                      self.clock())
            await self.write(conn, planner, decision, event)
        await self._dispatch(conn, event)

    def _learn(self, done: p.BuildDone) -> None:
        """A successful report of the current attempt teaches its source's duration."""
        task = self.task(done.task_id)
        if (task is not None and done.outcome is p.Outcome.SUCCESS
                and done.attempt == task.attempt and task.state is TaskState.BUILDING):
            self.learned.built(task, done.duration_s)

    def _planners_for(self, data: Any) -> list[Planner]:
        if isinstance(data, p.PackagePublished):
            # Every planner of that arch learns the new providers, whoever built them.
            return [pl for (_, arch), pl in self.planners.items() if arch == data.arch]
        planner = self.planner_of(getattr(data, "task_id", 0))
        return [planner] if planner is not None else []

    async def _on_commit(self, event: Event[Any]) -> None:
        data: p.CommitSeen = event.data
        repo = self.repos.get(data.repository)
        if repo is None:
            async with self.db.transaction() as conn:
                await inbox.claim(conn, CONSUMER, event.id)
            log.warning("summit.unknown_repository", repository=data.repository)
            return
        mirror = self.mirrors[repo.name]
        try:
            await asyncio.to_thread(mirror.resolve, data.new_commit)
        except CairnError:  # announced by a webhook before the mirror has it
            await self.mirrors.fetch(repo.name)
        decisions: list[tuple[Planner, Decision]] = []
        for arch in repo.arches:
            planner = self.planners[(repo.name, arch)]
            base = await store.planned_commit(self.db, repo.name, arch)
            if base == data.new_commit:
                continue
            if base is None:
                tree = await mirror.aread_tree(data.new_commit, arch)
                decisions.append((planner, planner.plan_tree(tree)))
            else:
                delta = await mirror.aread_delta(base, data.new_commit, arch)
                decisions.append((planner, planner.plan_delta(delta)))
        async with self.db.transaction() as conn:
            if not await inbox.claim(conn, CONSUMER, event.id):
                return
            for planner, decision in decisions:
                await self.write(conn, planner, decision, event)
                await store.set_planned(conn, repo.name, planner.repo.arch, data.new_commit)
            await self._dispatch(conn, event)
        log.info("summit.planned", repository=repo.name, commit=data.new_commit[:12],
                 tasks=sum(len(d.tasks) for _, d in decisions),
                 ready=sum(len(d.ready) for _, d in decisions))

    async def replay_assignment(self, event: Event[Any]) -> None:
        """A recorded assignment (``task-ready``) applied as summit made it: a later attempt
        than the one summit holds means the earlier one was given up (its builder was lost
        or never claimed it)."""
        assignment: p.TaskReady = event.data
        async with self.lock:
            task = self.task(assignment.task_id)
            planner = self.planner_of(assignment.task_id)
            if task is None or planner is None:
                return
            async with self.db.transaction() as conn:
                if task.attempt < assignment.attempt:
                    decision = planner.lose(task.task_id, "given to another attempt")
                    await self.write(conn, planner, decision, event)
                decision = planner.assign(task.task_id, assignment.builder, self.clock())
                await self.write(conn, planner, decision, event)

    async def _on_builder_seen(self, conn: Connection, event: Event[Any]) -> None:
        """A builder's report: remember it; a restarted or stopped builder's tasks go to
        another attempt; new capacity takes waiting tasks."""
        report: p.BuilderSeen = event.data
        seen = self.fleet.seen(report, self.clock())
        await store.save_builder(conn, seen.builder)
        if seen.gone:
            await self._lose_held(conn, seen.builder.name, None,
                                  f"builder {report.builder} stopped", event)
        elif seen.rebooted:
            await self._lose_held(conn, seen.builder.name, TaskState.BUILDING,
                                  f"builder {report.builder} restarted", event)
        await self._dispatch(conn, event)

    async def _lose_held(self, conn: Connection, builder: str, state: TaskState | None,
                         why: str, cause: Event[Any] | None) -> None:
        """Give every task ``builder`` holds (in ``state``, or any) to another attempt."""
        for task_id, holder in list(self._holder.items()):
            task = self.task(task_id)
            planner = self.planner_of(task_id)
            if holder != builder or task is None or planner is None:
                continue
            if state is None or task.state is state:
                await self.write(conn, planner, planner.lose(task_id, why, self.clock()),
                                 cause)

    async def tick(self) -> None:
        """Time-driven decisions: builders not heard from for their grace period are lost
        (with their tasks); assignments not claimed in time go to another attempt."""
        if self._unprovided:
            await self._learn_provides()
        now = self.clock()
        if self.hearing is not None and not await self.hearing():
            # Summit cannot hear anyone: no builder is lost for a silence summit caused.
            self.fleet.hold(now)
            return
        async with self.lock:
            lost = self.fleet.expire(now)
            late = [t for t in (self.task(i) for i, _ in list(self._holder.items()))
                    if t is not None and t.assigned and t.assigned_at is not None
                    and now - t.assigned_at > self.claim_timeout]
            if not lost and not late and not (self._waiting and self._any_free()):
                return
            try:
                async with self.db.transaction() as conn:
                    for builder in lost:
                        log.warning("summit.builder_lost", builder=builder.name,
                                    silent_s=round(now - builder.seen, 1))
                        await store.save_builder(conn, self.fleet.builders[builder.name])
                        await self._lose_held(conn, builder.name, None,
                                              f"builder {builder.name} was lost (not heard "
                                              f"from for {now - builder.seen:.0f} s)", None)
                    for task in late:
                        planner = self.planner_of(task.task_id)
                        assert planner is not None
                        why = (f"builder {task.builder} did not take the task within "
                               f"{self.claim_timeout:g} s")
                        await self.write(conn, planner,
                                         planner.lose(task.task_id, why, now), None)
                    await self._dispatch(conn, None)
            except BaseException:
                await self._reload()
                raise
        self.relay.notify()



def _summary(task: Task) -> str:
    """One line for a task's timeline entry (its new state is recorded beside it)."""
    if task.blocked_by:
        return "; ".join(f"{b.kind} {b.source or b.name or ','.join(b.members)}"
                         for b in task.blocked_by)
    if task.assigned:
        return f"assigned to {task.builder} (attempt {task.attempt})"
    if task.failure:
        return task.failure
    return f"on {task.builder}" if task.builder else ""
