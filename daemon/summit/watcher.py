"""Watching recipe repositories: poll each branch, fetch at once on a webhook or a request,
and record every move of a branch head as ``commit-seen`` (through the outbox, in the same
transaction as the new head), which the scheduler then plans. The head is always what git
says the branch points at after a fetch; a webhook only says when to look."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping

import structlog

from daemon.summit import store
from daemon.summit.gitrepo import RepoConfig
from daemon.summit.mirrors import Mirrors
from events import outbox
from events import payloads as p
from events.envelope import new_event
from events.errors import CairnError
from events.outbox import OutboxRelay
from events.sqlite import Connection, Database

log = structlog.get_logger("cairn.summit")

SOURCE = "cairn/summit"


class Watcher:
    def __init__(self, db: Database, relay: OutboxRelay, repos: Mapping[str, RepoConfig],
                 mirrors: Mirrors, poll_interval: float) -> None:
        self.db = db
        self.relay = relay
        self.repos = repos
        self.mirrors = mirrors
        self.poll_interval = poll_interval
        self._refresh = {name: asyncio.Event() for name in repos}
        self._wake_via: dict[str, p.SeenVia] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._watch(name), name=f"watch-{name}")
                       for name in self.repos]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    def refresh(self, name: str, via: p.SeenVia = p.SeenVia.REQUEST) -> None:
        """Fetch a repository now instead of at the next poll."""
        if name not in self._refresh:
            raise CairnError(f"there is no repository {name!r}; known: {sorted(self.repos)}")
        self._wake_via[name] = via
        self._refresh[name].set()

    # -- webhooks ---------------------------------------------------------------------------
    async def delivery_seen(self, delivery_id: str) -> bool:
        """Whether a forge delivery was already acted on (pure check; recorded on push)."""
        return await store.delivery_seen(self.db, delivery_id)

    async def pushed(self, name: str, commit: str, delivery_id: str) -> None:
        """A forge says ``name``'s branch moved (to ``commit``): record the delivery (once)
        and fetch at once instead of at the next poll.

        What gets planned is what the branch points at after that fetch, never the push's
        own ``commit``: a signed push captured and sent again with a new delivery id would
        otherwise make summit plan an old commit. The recorded delivery is the durable part
        (a summit killed before the fetch fetches at start anyway)."""
        if name not in self.repos:
            raise CairnError(f"there is no repository {name!r}")
        async with self.db.transaction() as conn:
            await store.record_delivery(conn, delivery_id, name, commit)
        self.refresh(name, p.SeenVia.WEBHOOK)

    # -- polling ----------------------------------------------------------------------------
    async def _watch(self, name: str) -> None:
        repo, mirror, wake = self.repos[name], self.mirrors[name], self._refresh[name]
        via = p.SeenVia.START
        while True:
            wake.clear()
            try:
                await self.mirrors.fetch(name)
                head = await mirror.ahead()
            except CairnError as exc:
                log.warning("summit.fetch_failed", repository=name, error=str(exc))
                async with self.db.transaction() as conn:
                    await store.set_head(conn, name, None, str(exc))
            else:
                await self._saw(repo, head, via)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), self.poll_interval)
            via = self._wake_via.pop(name, p.SeenVia.REQUEST) if wake.is_set() \
                else p.SeenVia.POLL

    async def _saw(self, repo: RepoConfig, head: str, via: p.SeenVia) -> None:
        """Record the branch head; when it moved, emit ``commit-seen`` in the same commit."""
        async with self.db.transaction() as conn:
            moved = await self._record_head(conn, repo, head, via)
        if moved:
            self.relay.notify()

    async def _record_head(self, conn: Connection, repo: RepoConfig, head: str,
                           via: p.SeenVia) -> bool:
        old = await store.head(conn, repo.name)
        await store.set_head(conn, repo.name, head, None)
        if old == head:
            return False
        seen = p.CommitSeen(repository=repo.name, url=repo.url, branch=repo.branch,
                            new_commit=head, old_commit=old, arches=list(repo.arches),
                            seen_via=via)
        await outbox.add(conn, new_event(seen, source=SOURCE))
        log.info("summit.commit_seen", repository=repo.name, commit=head[:12], via=str(via))
        return True
