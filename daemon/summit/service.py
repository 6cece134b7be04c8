"""Summit's service: the parts of the scheduler put together and started in order.

* :class:`~daemon.summit.watcher.Watcher` watches the recipe repositories and records
  ``commit-seen`` (polls, webhooks, requests);
* :class:`~daemon.summit.scheduler.Scheduler` feeds every event to the planners and stores
  and emits what they decide;
* :class:`~daemon.summit.operations.Operations` carries out operators' requests;
* :func:`~daemon.summit.seed.seed_published` learns what an existing repository publishes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from daemon.formats import layout
from daemon.summit import store
from daemon.summit.envprovides import EnvironmentCatalogue
from daemon.summit.gitrepo import RepoConfig
from daemon.summit.mirrors import Mirrors
from daemon.summit.operations import Operations
from daemon.summit.planning.constraints import NO_CONSTRAINTS, Constraints
from daemon.summit.planning.limits import NO_LIMITS, LimitRules
from daemon.summit.planning.states import MAX_ATTEMPTS, Backoff
from daemon.summit.scheduler import CLAIM_TIMEOUT_S, Scheduler
from daemon.summit.seed import seed_published
from daemon.summit.watcher import Watcher
from events.bus import Bus, Consumer
from events.errors import BusError
from events.outbox import OutboxRelay
from events.sqlite import Database
from events.topology import SUMMIT, VESSEL

log = structlog.get_logger("cairn.summit")


@dataclass(frozen=True)
class SummitSettings:
    """What a summit needs besides its bus and database."""

    repositories: Sequence[RepoConfig]
    mirrors_dir: Path
    channel: str = "volatile"
    #: vessel's base URL: the channel's index is ``<url>/<channel>/<arch>/current/index.json``.
    repository_url: str | None = None
    #: vessel's minisign public key: environment records (what a repository's build
    #: environment provides) are checked with it; ``None``: read unchecked.
    vessel_key: Path | None = None
    poll_interval: float = 60.0
    max_attempts: int = MAX_ATTEMPTS
    #: How long an assigned task waits for its builder's claim before another attempt.
    claim_timeout: float = CLAIM_TIMEOUT_S
    #: How often time-driven decisions (lost builders, unclaimed tasks) are made.
    tick_interval: float = 1.0
    #: Assign ready tasks to builders (off for a dry-run replay, which replays them).
    dispatching: bool = True
    #: What tasks need of builders (per repository, per source pattern).
    constraints: Constraints = NO_CONSTRAINTS
    #: Each repository's base priority.
    priorities: Mapping[str, int] = field(default_factory=dict)
    #: The limits builds run under (per repository, per source pattern).
    limits: LimitRules = NO_LIMITS
    #: How long an infrastructure failure waits before its next attempt.
    backoff: Backoff = field(default_factory=Backoff)


class Summit:
    """The scheduler service: watcher, scheduler and operations over one bus and database."""

    name = "summit"

    def __init__(self, bus: Bus, db: Database, relay: OutboxRelay,
                 settings: SummitSettings) -> None:
        self.bus = bus
        self.db = db
        self.settings = settings
        self.repos = {r.name: r for r in settings.repositories}
        self.mirrors = Mirrors(settings.mirrors_dir)
        self.scheduler = Scheduler(db, relay, self.repos, self.mirrors, settings.channel,
                                   self.index_url, settings.max_attempts,
                                   settings.claim_timeout, hearing=self._hearing,
                                   dispatching=settings.dispatching,
                                   constraints=settings.constraints,
                                   priorities=settings.priorities,
                                   limits=settings.limits, backoff=settings.backoff,
                                   catalogue=EnvironmentCatalogue(settings.repository_url,
                                                                  settings.vessel_key))
        self.watcher = Watcher(db, relay, self.repos, self.mirrors, settings.poll_interval)
        self.operations = Operations(self.scheduler)
        self._consumers: list[Consumer] = []
        self._ticker: asyncio.Task[None] | None = None

    async def _hearing(self) -> bool:
        try:
            await self.bus.check()
        except BusError:
            return False
        return True

    @property
    def arches(self) -> list[str]:
        return sorted({a for r in self.repos.values() for a in r.arches})

    def index_url(self, arch: str) -> str | None:
        base = self.settings.repository_url
        return layout.index_url(base, self.settings.channel, arch) if base else None

    async def start(self) -> None:
        await self.prepare()
        # Vessel's queue exists before summit accepts a build, whichever service starts
        # first: the journal's queue takes every event, so a build-accepted sent before
        # vessel's first start would not come back unroutable — vessel would never see it
        # and the task would stay publishing.
        await self.bus.declare(VESSEL)
        self._consumers.append(await self.bus.subscribe(SUMMIT, self.scheduler.handle))
        self.watcher.start()
        self._ticker = asyncio.create_task(self._tick(), name="summit-tick")
        log.info("summit.ready", repositories=sorted(self.repos), arches=self.arches,
                 tasks=len(self.scheduler.all_tasks()))

    async def prepare(self) -> None:
        """Everything but consuming and watching: mirrors, what is published, the planners
        rebuilt from the database (also what a dry-run replay needs)."""
        await self.mirrors.open(self.repos.values())
        for repo in self.repos.values():
            async with self.db.transaction() as conn:
                await store.upsert_repository(conn, repo.name, repo.url, repo.branch)
        for arch in self.arches:
            await seed_published(self.db, self.index_url(arch), self.settings.channel, arch)
        await self.scheduler.load()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.settings.tick_interval)
            try:
                await self.scheduler.tick()
            except Exception as exc:  # a locked database, a failed publish: next tick
                log.warning("summit.tick_failed", error=repr(exc))

    async def stop(self, timeout: float = 10.0) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        await self.watcher.stop()
        consumers, self._consumers = self._consumers, []
        await asyncio.gather(*(c.cancel(timeout) for c in consumers))
