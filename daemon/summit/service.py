"""Summit's service: watches repositories, feeds events to the planners, stores and emits.

It is a shell around :class:`daemon.summit.planning.planner.Planner` (one per repository and arch):
every event handler claims the event in the inbox, asks the planner for a decision, and
writes the decision's task records and the events it emits (through the outbox) in that
same transaction. A publication therefore dispatches its dependents the moment it is
handled: there is no polling between a ``package-published`` and the next ``task-ready``.

Planner calls are serialised by one lock. If a transaction fails after a planner decided,
the planners are rebuilt from the database so memory never runs ahead of what is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import structlog

from daemon.package import Index
from daemon.summit import store
from daemon.summit.gitrepo import Mirror, RepoConfig
from daemon.summit.planning.planner import Decision, Planner
from daemon.summit.planning.states import MAX_ATTEMPTS, RepoRef, Task
from events import inbox, outbox
from events import payloads as p
from events.bus import Bus, Consumer
from events.envelope import Event, new_event
from events.errors import CairnError
from events.outbox import OutboxRelay
from events.sqlite import Connection, Database
from events.topology import SUMMIT, work, work_dead_letters

log = structlog.get_logger("cairn.summit")

CONSUMER = "summit"
SOURCE = "cairn/summit"


@dataclass(frozen=True)
class SummitSettings:
    """What a summit needs besides its bus and database."""

    repositories: Sequence[RepoConfig]
    mirrors_dir: Path
    channel: str = "volatile"
    #: vessel's base URL: the channel's index is ``<url>/<channel>/<arch>/current/index.json``.
    repository_url: str | None = None
    poll_interval: float = 60.0
    max_attempts: int = MAX_ATTEMPTS


class Summit:
    """The scheduler."""

    name = "summit"

    def __init__(self, bus: Bus, db: Database, relay: OutboxRelay,
                 settings: SummitSettings) -> None:
        self.bus = bus
        self.db = db
        self.relay = relay
        self.settings = settings
        self.repos = {r.name: r for r in settings.repositories}
        self.mirrors: dict[str, Mirror] = {}
        self.planners: dict[tuple[str, str], Planner] = {}
        self._owner: dict[int, tuple[str, str]] = {}
        self._next_id = 1
        self._lock = asyncio.Lock()
        self._refresh: dict[str, asyncio.Event] = {}
        self._wake_via: dict[str, p.SeenVia] = {}
        #: One fetch at a time per mirror (git locks its refs while fetching).
        self._fetching: dict[str, asyncio.Lock] = {}
        self._watchers: list[asyncio.Task[None]] = []
        self._consumers: list[Consumer] = []

    @property
    def arches(self) -> list[str]:
        return sorted({a for r in self.repos.values() for a in r.arches})

    def index_url(self, arch: str) -> str | None:
        base = self.settings.repository_url
        return f"{base.rstrip('/')}/{self.settings.channel}/{arch}/current/index.json" \
            if base else None

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        await self.prepare()
        self._consumers.append(await self.bus.subscribe(SUMMIT, self.handle))
        for arch in self.arches:
            self._consumers.append(await self.bus.subscribe(work_dead_letters(arch),
                                                            self.handle_dead_task))
        for name in self.repos:
            self._refresh[name] = asyncio.Event()
            self._watchers.append(asyncio.create_task(self._watch(name), name=f"watch-{name}"))
        log.info("summit.ready", repositories=sorted(self.repos), arches=self.arches,
                 tasks=len(self._owner))

    async def prepare(self) -> None:
        """Everything but consuming and watching: mirrors, what is published, the planners
        rebuilt from the database (also what a dry-run replay needs)."""
        for arch in self.arches:
            await self.bus.declare(work(arch))
        for repo in self.repos.values():
            self.mirrors[repo.name] = await asyncio.to_thread(
                Mirror.open, repo, self.settings.mirrors_dir)
            async with self.db.transaction() as conn:
                await store.upsert_repository(conn, repo.name, repo.url, repo.branch)
        for arch in self.arches:
            await self._seed_published(arch)
        await self._load_planners()

    async def stop(self, timeout: float = 10.0) -> None:
        for watcher in self._watchers:
            watcher.cancel()
        for watcher in self._watchers:
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        self._watchers.clear()
        consumers, self._consumers = self._consumers, []
        await asyncio.gather(*(c.cancel(timeout) for c in consumers))

    async def _seed_published(self, arch: str) -> None:
        """On first start against an existing repository, learn what it already publishes."""
        url = self.index_url(arch)
        if url is None or await store.has_publications(self.db, self.settings.channel, arch):
            return
        try:
            async with aiohttp.ClientSession() as session, session.get(
                    url, timeout=aiohttp.ClientTimeout(total=30)) as response:
                if response.status == 404:
                    return
                response.raise_for_status()
                index = msgspec.json.decode(await response.read(), type=Index)
        except (aiohttp.ClientError, TimeoutError, msgspec.DecodeError) as exc:
            log.warning("summit.index_unavailable", url=url, error=str(exc))
            return
        async with self.db.transaction() as conn:
            for entry in index.packages:
                await store.record_publication(conn, self.settings.channel, arch, entry.source,
                                               entry.release, (entry.name, *entry.provides))
        log.info("summit.seeded_index", url=url, packages=len(index.packages))

    async def _load_planners(self) -> None:
        """(Re)build every planner from the database and the commits they had applied."""
        tasks = await store.load_tasks(self.db)
        self._next_id = max((t.task_id for t in tasks), default=0) + 1
        self.planners.clear()
        self._owner = {t.task_id: (t.repository, t.arch) for t in tasks}
        for repo in self.repos.values():
            for arch in repo.arches:
                ref = RepoRef(repo.name, repo.url, arch, self.settings.channel,
                              self.index_url(arch))
                published = await store.load_published(self.db, self.settings.channel, arch)
                mine = [t for t in tasks if t.repository == repo.name and t.arch == arch]
                planner = Planner(ref, published, mine, next_task_id=self._next_id,
                                  max_attempts=self.settings.max_attempts)
                self.planners[(repo.name, arch)] = planner
                commit = await store.planned_commit(self.db, repo.name, arch)
                if commit is not None:
                    tree = await self.mirrors[repo.name].aread_tree(commit, arch)
                    await self._commit(self._call(planner, planner.plan_tree, tree), None,
                                       planner)

    # -- applying decisions ------------------------------------------------------------
    def _call(self, planner: Planner, method: Any, *args: Any) -> Decision:
        planner.next_task_id = self._next_id
        decision: Decision = method(*args)
        self._next_id = max(self._next_id, planner.next_task_id)
        for task in decision.tasks:
            self._owner[task.task_id] = (planner.repo.name, planner.repo.arch)
        return decision

    async def _write(self, conn: Connection, decision: Decision, cause: Event[Any] | None,
                     planner: Planner) -> None:
        await store.save_tasks(conn, decision.tasks)
        await store.add_timeline(conn, [
            (t.task_id, cause.id if cause else None, str(t.state), _summary(t))
            for t in decision.tasks])
        for emit in decision.emits:
            await outbox.add(conn, new_event(emit, source=SOURCE, causation=cause))
        if decision.problems or cause is None or cause.type == "commit-seen":
            await store.set_recipe_errors(conn, planner.repo.name, planner.problems)

    async def _commit(self, decision: Decision, cause: Event[Any] | None,
                      planner: Planner) -> None:
        async with self.db.transaction() as conn:
            await self._write(conn, decision, cause, planner)
        if decision.emits:
            self.relay.notify()

    # -- events ---------------------------------------------------------------------------
    async def handle(self, event: Event[Any]) -> None:
        """Every event summit consumes; a duplicate (same id) changes nothing."""
        if await inbox.seen(self.db, CONSUMER, event.id):
            return
        async with self._lock:
            try:
                if isinstance(event.data, p.CommitSeen):
                    await self._on_commit(event)
                else:
                    await self._on_build_event(event)
            except BaseException:
                log.warning("summit.reloading_planners", event_type=event.type)
                await self._load_planners()
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
                decision = self._call(planner, planner.handle, data)
                await self._write(conn, decision, event, planner)

    def _planners_for(self, data: Any) -> list[Planner]:
        if isinstance(data, p.PackagePublished):
            # Every planner of that arch learns the new providers, whoever built them.
            return [pl for (_, arch), pl in self.planners.items() if arch == data.arch]
        owner = self._owner.get(getattr(data, "task_id", 0))
        return [self.planners[owner]] if owner in self.planners else []

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
            await self._fetch(repo.name)
        decisions: list[tuple[Planner, Decision]] = []
        for arch in repo.arches:
            planner = self.planners[(repo.name, arch)]
            base = await store.planned_commit(self.db, repo.name, arch)
            if base == data.new_commit:
                continue
            if base is None:
                tree = await mirror.aread_tree(data.new_commit, arch)
                decisions.append((planner, self._call(planner, planner.plan_tree, tree)))
            else:
                delta = await mirror.aread_delta(base, data.new_commit, arch)
                decisions.append((planner, self._call(planner, planner.plan_delta, delta)))
        async with self.db.transaction() as conn:
            if not await inbox.claim(conn, CONSUMER, event.id):
                return
            for planner, decision in decisions:
                await self._write(conn, decision, event, planner)
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
        async with self._lock:
            owner = self._owner.get(data.task_id)
            if owner is None or owner not in self.planners:
                return
            planner = self.planners[owner]
            reason = ("dead-lettered by the work queue: every builder that took it died "
                      "(delivery limit reached)")
            decision = self._call(planner, planner.fail, data.task_id, reason)
            await self._commit(decision, event, planner)

    # -- reading (API, dashboard) ---------------------------------------------------------
    def task(self, task_id: int) -> Task | None:
        """The task with this id, whichever planner owns it."""
        owner = self._owner.get(task_id)
        planner = self.planners.get(owner) if owner is not None else None
        return planner.tasks.get(task_id) if planner is not None else None

    def all_tasks(self) -> list[Task]:
        return [t for planner in self.planners.values() for t in planner.tasks.values()]

    # -- operator requests ----------------------------------------------------------------
    async def retry(self, task_id: int) -> Task:
        return await self._operate(task_id, "retry")

    async def cancel(self, task_id: int, reason: str = "cancelled by an operator") -> Task:
        return await self._operate(task_id, "cancel", reason)

    async def _operate(self, task_id: int, action: str, *args: Any) -> Task:
        async with self._lock:
            owner = self._owner.get(task_id)
            if owner is None or owner not in self.planners:
                raise CairnError(f"there is no task {task_id}")
            planner = self.planners[owner]
            decision = self._call(planner, getattr(planner, action), task_id, *args)
            await self._commit(decision, None, planner)
            changed = [t for t in decision.tasks if t.task_id != task_id or action == "cancel"]
            return changed[-1] if changed else planner.tasks[task_id]

    def refresh(self, name: str, via: p.SeenVia = p.SeenVia.REQUEST) -> None:
        """Fetch a repository now instead of at the next poll."""
        if name not in self._refresh:
            raise CairnError(f"there is no repository {name!r}; known: {sorted(self.repos)}")
        self._wake_via[name] = via
        self._refresh[name].set()

    # -- webhooks ---------------------------------------------------------------------------
    async def delivery_seen(self, delivery_id: str) -> bool:
        """Whether a forge delivery was already acted on (pure check; recorded on push)."""
        row = await self.db.fetchone(
            "SELECT 1 FROM webhook_deliveries WHERE delivery_id = ?", (delivery_id,))
        return row is not None

    async def pushed(self, name: str, commit: str, delivery_id: str) -> None:
        """A forge says ``name``'s branch is now ``commit``: store ``commit-seen`` (with the
        delivery, once) before any slow work, then fetch at once instead of at the next poll.
        """
        repo = self.repos.get(name)
        if repo is None:
            raise CairnError(f"there is no repository {name!r}")
        async with self.db.transaction() as conn:
            cursor = await conn.execute(
                "INSERT OR IGNORE INTO webhook_deliveries (delivery_id, repository, commit_id,"
                " received) VALUES (?, ?, ?, ?)", (delivery_id, name, commit, time.time()))
            if cursor.rowcount == 1:
                await self._record_head(conn, repo, commit, p.SeenVia.WEBHOOK)
        self.relay.notify()
        self.refresh(name, p.SeenVia.WEBHOOK)

    # -- watching -------------------------------------------------------------------------
    async def _watch(self, name: str) -> None:
        repo, mirror, wake = self.repos[name], self.mirrors[name], self._refresh[name]
        via = p.SeenVia.START
        while True:
            wake.clear()
            try:
                await self._fetch(name)
                head = await mirror.ahead()
            except CairnError as exc:
                log.warning("summit.fetch_failed", repository=name, error=str(exc))
                async with self.db.transaction() as conn:
                    await store.set_head(conn, name, None, str(exc))
            else:
                await self._saw(repo, head, via)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), self.settings.poll_interval)
            via = self._wake_via.pop(name, p.SeenVia.REQUEST) if wake.is_set() \
                else p.SeenVia.POLL

    async def _fetch(self, name: str) -> None:
        async with self._fetching.setdefault(name, asyncio.Lock()):
            await self.mirrors[name].afetch()

    async def _saw(self, repo: RepoConfig, head: str, via: p.SeenVia) -> None:
        """Record the branch head; when it moved, emit ``commit-seen`` in the same commit."""
        async with self.db.transaction() as conn:
            moved = await self._record_head(conn, repo, head, via)
        if moved:
            self.relay.notify()

    async def _record_head(self, conn: Connection, repo: RepoConfig, head: str,
                           via: p.SeenVia) -> bool:
        row = await (await conn.execute("SELECT head FROM repositories WHERE name = ?",
                                        (repo.name,))).fetchone()
        old = row["head"] if row is not None else None
        await store.set_head(conn, repo.name, head, None)
        if old == head:
            return False
        seen = p.CommitSeen(repository=repo.name, url=repo.url, branch=repo.branch,
                            new_commit=head, old_commit=old, arches=list(repo.arches),
                            seen_via=via)
        await outbox.add(conn, new_event(seen, source=SOURCE))
        log.info("summit.commit_seen", repository=repo.name, commit=head[:12], via=str(via))
        return True


def _summary(task: Task) -> str:
    """One line for a task's timeline entry (its new state is recorded beside it)."""
    if task.blocked_by:
        return "; ".join(f"{b.kind} {b.source or b.name or ','.join(b.members)}"
                         for b in task.blocked_by)
    if task.failure:
        return task.failure
    return f"on {task.builder}" if task.builder else ""
