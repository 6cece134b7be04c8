"""Summit's scheduler: events in, the planners' decisions stored and emitted.

It is a shell around :class:`daemon.summit.planning.planner.Planner` (one per repository and
arch): every event handler claims the event in the inbox, asks a planner for a decision, and
writes the decision's task records and the events it emits (through the outbox) in that
same transaction. A publication therefore dispatches its dependents the moment it is
handled: there is no polling between a ``package-published`` and the next ``task-ready``.

Planner calls are serialised by one lock. If a transaction fails after a planner decided,
the planners are rebuilt from the database so memory never runs ahead of what is stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from daemon.summit import store
from daemon.summit.gitrepo import RepoConfig
from daemon.summit.mirrors import Mirrors
from daemon.summit.planning.planner import Decision, PlanError, Planner, TaskIds
from daemon.summit.planning.states import MAX_ATTEMPTS, RepoRef, Task
from events import inbox, outbox
from events import payloads as p
from events.envelope import Event, new_event
from events.errors import CairnError
from events.outbox import OutboxRelay
from events.sqlite import Connection, Database

log = structlog.get_logger("cairn.summit")

CONSUMER = "summit"
SOURCE = "cairn/summit"


class Scheduler:
    """Every planner of a summit, the events that feed them, and what they decide."""

    def __init__(self, db: Database, relay: OutboxRelay, repos: Mapping[str, RepoConfig],
                 mirrors: Mirrors, channel: str, index_url: Callable[[str], str | None],
                 max_attempts: int = MAX_ATTEMPTS) -> None:
        self.db = db
        self.relay = relay
        self.repos = repos
        self.mirrors = mirrors
        self.channel = channel
        self.index_url = index_url
        self.max_attempts = max_attempts
        self.planners: dict[tuple[str, str], Planner] = {}
        self.ids = TaskIds()
        self._owner: dict[int, tuple[str, str]] = {}
        self.lock = asyncio.Lock()

    # -- loading ---------------------------------------------------------------------------
    async def load(self) -> None:
        """(Re)build every planner from the database and the commits they had applied."""
        tasks = await store.load_tasks(self.db)
        self.ids = TaskIds(max((t.task_id for t in tasks), default=0))
        self.planners.clear()
        self._owner = {t.task_id: (t.repository, t.arch) for t in tasks}
        for repo in self.repos.values():
            for arch in repo.arches:
                ref = RepoRef(repo.name, repo.url, arch, self.channel, self.index_url(arch))
                published = await store.load_published(self.db, self.channel, arch)
                mine = [t for t in tasks if t.repository == repo.name and t.arch == arch]
                planner = Planner(ref, published, mine, ids=self.ids,
                                  max_attempts=self.max_attempts)
                self.planners[(repo.name, arch)] = planner
                commit = await store.planned_commit(self.db, repo.name, arch)
                if commit is not None:
                    tree = await self.mirrors[repo.name].aread_tree(commit, arch)
                    await self.commit(planner, planner.plan_tree(tree), None)

    # -- reading ---------------------------------------------------------------------------
    def task(self, task_id: int) -> Task | None:
        """The task with this id, whichever planner owns it."""
        planner = self.planner_of(task_id)
        return planner.tasks.get(task_id) if planner is not None else None

    def planner_of(self, task_id: int) -> Planner | None:
        owner = self._owner.get(task_id)
        return self.planners.get(owner) if owner is not None else None

    def all_tasks(self) -> list[Task]:
        return [t for planner in self.planners.values() for t in planner.tasks.values()]

    # -- applying decisions ----------------------------------------------------------------
    async def write(self, conn: Connection, planner: Planner, decision: Decision,
                    cause: Event[Any] | None) -> None:
        """Store a decision's tasks and timeline and queue its events, in ``conn``'s
        transaction."""
        for task in decision.tasks:
            self._owner[task.task_id] = (planner.repo.name, planner.repo.arch)
        await store.save_tasks(conn, decision.tasks)
        await store.add_timeline(conn, [
            (t.task_id, cause.id if cause else None, str(t.state), _summary(t))
            for t in decision.tasks])
        for emit in decision.emits:
            await outbox.add(conn, new_event(emit, source=SOURCE, causation=cause))
        if decision.problems or cause is None or cause.type == "commit-seen":
            await store.set_recipe_errors(conn, planner.repo.name, planner.problems)

    async def commit(self, planner: Planner, decision: Decision,
                     cause: Event[Any] | None) -> None:
        """Store a decision in a transaction of its own and wake the relay."""
        async with self.db.transaction() as conn:
            await self.write(conn, planner, decision, cause)
        if decision.emits:
            self.relay.notify()

    async def decide(self, task_id: int, decide: Callable[[Planner], Decision]) -> Planner:
        """Apply one decision about a task (an operator's request, a dead letter) under the
        lock; the planners are rebuilt if storing it fails."""
        async with self.lock:
            planner = self.planner_of(task_id)
            if planner is None:
                raise PlanError(f"there is no task {task_id}")
            try:
                await self.commit(planner, decide(planner), None)
            except BaseException:
                await self._reload()
                raise
            return planner

    async def _reload(self) -> None:
        log.warning("summit.reloading_planners")
        await self.load()

    # -- events ----------------------------------------------------------------------------
    async def handle(self, event: Event[Any]) -> None:
        """Every event summit consumes; a duplicate (same id) changes nothing."""
        if await inbox.seen(self.db, CONSUMER, event.id):
            return
        async with self.lock:
            try:
                if isinstance(event.data, p.CommitSeen):
                    await self._on_commit(event)
                else:
                    await self._on_build_event(event)
            except BaseException:
                await self._reload()
                raise
        self.relay.notify()

    async def _on_build_event(self, event: Event[Any]) -> None:
        data = event.data
        planners = self._planners_for(data)
        async with self.db.transaction() as conn:
            if not await inbox.claim(conn, CONSUMER, event.id):
                return
            if isinstance(data, p.PackagePublished):
                names = [n for pkg in data.packages for n in (pkg.name, *pkg.provides)]
                await store.record_publication(conn, data.channel, data.arch, data.source,
                                               data.release, names)
                await store.record_generation(
                    conn, data.channel, data.arch, data.generation, data.task_id, data.source,
                    data.release, data.build_release, [pkg.name for pkg in data.packages])
            if isinstance(data, p.BuildDone):
                await store.record_build(conn, data.task_id, data.builder, str(data.outcome),
                                         data.reason, data.log_url, data.duration_s)
            for planner in planners:
                await self.write(conn, planner, planner.handle(data), event)

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
        log.info("summit.planned", repository=repo.name, commit=data.new_commit[:12],
                 tasks=sum(len(d.tasks) for _, d in decisions),
                 ready=sum(len(d.ready) for _, d in decisions))

    async def handle_dead_task(self, event: Event[Any]) -> None:
        """A task the broker dead-lettered (it kept killing builders): fail it."""
        data = event.data
        if not isinstance(data, p.TaskReady):
            log.warning("summit.dead_letter_ignored", event_type=event.type)
            return
        if self.planner_of(data.task_id) is None:
            return
        reason = ("dead-lettered by the work queue: every builder that took it died "
                  "(delivery limit reached)")
        await self.decide(data.task_id, lambda planner: planner.fail(data.task_id, reason))


def _summary(task: Task) -> str:
    """One line for a task's timeline entry (its new state is recorded beside it)."""
    if task.blocked_by:
        return "; ".join(f"{b.kind} {b.source or b.name or ','.join(b.members)}"
                         for b in task.blocked_by)
    if task.failure:
        return task.failure
    return f"on {task.builder}" if task.builder else ""
