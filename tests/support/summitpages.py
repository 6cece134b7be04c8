"""Summit's service in the test's (or benchmark's) process, planned from a recipe repository,
and its pages (the JSON API and the dashboard) served on real HTTP: what the read view's
tests (``tests/integration/test_readview.py``) and the 50,000-task benchmark
(``bench/dashboard_scale.py``) both set up. No daemon, no broker: the embedded bus, a SQLite
store, the outbox relay; events are handed to the scheduler directly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from aiohttp import web

from daemon.summit import schema
from daemon.summit.gitrepo import RepoConfig
from daemon.summit.service import Summit, SummitSettings
from daemon.summit.web.api import add_routes
from daemon.summit.web.dashboard import add_dashboard
from events import payloads as p
from events.envelope import new_event
from events.memory import MemoryBus
from events.outbox import OutboxRelay
from events.sqlite import Database


@asynccontextmanager
async def summit_service(root: Path, *repositories: RepoConfig) -> AsyncIterator[Summit]:
    """A prepared summit watching ``repositories``, its state (store, mirrors) under
    ``root``; nothing planned yet (:func:`plan_head`)."""
    settings = SummitSettings(repositories=list(repositories), mirrors_dir=root / "mirrors")
    bus = MemoryBus()
    async with bus, Database.open(root / "summit.sqlite", schema.MIGRATIONS) as db, \
            OutboxRelay(db, bus) as relay:
        summit = Summit(bus, db, relay, settings)
        await summit.prepare()
        yield summit


async def plan_head(summit: Summit, name: str) -> None:
    """Fetch repository ``name`` and plan the head of its branch (a ``commit-seen``)."""
    repo = summit.repos[name]
    await summit.mirrors.fetch(name)
    head = summit.mirrors[name].head(repo.branch)
    await summit.scheduler.handle(new_event(p.CommitSeen(
        repository=name, url=repo.url, branch=repo.branch, new_commit=head,
        arches=list(repo.arches)), source="test"))


@asynccontextmanager
async def served_pages(summit: Summit, token: str = "test-token") -> AsyncIterator[str]:
    """Summit's API and dashboard on 127.0.0.1 (no access log): their base URL."""
    app = web.Application()
    add_routes(app, summit, token)
    add_dashboard(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
