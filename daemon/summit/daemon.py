"""``cairn summit``: the scheduler as its own daemon, with its JSON API."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated

import msgspec
import structlog
from aiohttp import web

from daemon.buildenv.errors import BuildEnvError
from daemon.buildenv.manifest import check_digest
from daemon.host import Host
from daemon.metrics import ServiceMetrics
from daemon.runtime import BaseConfig, Health, Section
from daemon.runtime.address import loopback_across_hosts
from daemon.runtime.config import Branch, Port, Seconds
from daemon.runtime.listen import start_site
from daemon.summit import schema
from daemon.summit.gitrepo import RepoConfig
from daemon.summit.planning.constraints import Constraints, Needs, Rule
from daemon.summit.planning.limits import LimitRule, LimitRules
from daemon.summit.planning.states import Backoff, TaskState
from daemon.summit.scheduler import SchedulerObserver
from daemon.summit.service import Summit, SummitSettings
from daemon.summit.web.actions import add_actions
from daemon.summit.web.api import add_routes
from daemon.summit.web.apiread import farm_progress
from daemon.summit.web.apisteer import add_steering
from daemon.summit.web.dashboard import add_dashboard
from daemon.summit.web.live import Live
from daemon.summit.webhooks.http import webhook_routes
from daemon.summit.webhooks.verify import WebhookRepo
from events.bus import Bus
from events.errors import ConfigError
from events.payloads import Arch, LogOverflow, Name
from events.topology import SUMMIT

log = structlog.get_logger("cairn.summit")


class RepositorySection(Section, frozen=True):
    """One ``[[summit.repositories]]`` entry."""

    #: Names and arches become queue words, file names and URL paths: the event contract's
    #: own patterns apply, so ``x86_64/../../x`` stops the start naming the key.
    name: Name
    url: str
    branch: Branch = "main"
    arches: list[Arch] = msgspec.field(default_factory=lambda: ["x86_64"])
    #: Other spellings forges use for it (ssh and web URLs, ``owner/name``) for webhooks.
    webhook_urls: list[str] = msgspec.field(default_factory=list)
    #: Webhook secrets, per forge; an empty one means that forge cannot notify summit.
    #: Set them from the environment (CAIRN_SUMMIT_REPOSITORIES as JSON) or a 0600 file.
    github_secret: str = ""
    gitea_secret: str = ""
    #: The build environment its builds run in (a sha256 digest vessel lists; "" = none:
    #: each builder decides). Read at the repository's first start only: later, change it
    #: with `cairn recipes environment NAME DIGEST`, which rebuilds what it built.
    environment: str = ""
    gitlab_token: str = ""
    #: The base priority of its tasks (higher goes first; operators adjust single tasks).
    priority: int = 0


class ConstraintSection(Section, frozen=True):
    """One ``[[summit.constraints]]`` entry: what builds of matching sources need."""

    #: Shell-style pattern over source names (``llvm*``).
    pattern: str = "*"
    #: Only this repository's tasks ("": any).
    repository: str = ""
    features: list[str] = msgspec.field(default_factory=list)
    memory_mb: int = 0
    disk_mb: int = 0

    def rule(self) -> Rule:
        return Rule(Needs(frozenset(self.features), self.memory_mb, self.disk_mb),
                    self.pattern, self.repository or None)


class LimitSection(Section, frozen=True):
    """One ``[[summit.limits]]`` entry: limits of the builds of matching sources (pattern
    ``*``: the repository's defaults; others override them); 0 or "": not set here."""

    pattern: str = "*"
    #: Only this repository's tasks ("": any).
    repository: str = ""
    timeout_s: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    #: No output for this long ends a build ``silent``.
    silence_s: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    #: The log's cap; past it the log is cut, and the build fails (``log-limit``) when
    #: ``log_overflow`` is "fail", goes on when "truncate".
    log_bytes: Annotated[int, msgspec.Meta(ge=0)] = 0
    log_overflow: LogOverflow | None = None
    #: The install tree's and the packages' cap (``output-limit`` past it).
    output_bytes: Annotated[int, msgspec.Meta(ge=0)] = 0

    def rule(self) -> LimitRule:
        return LimitRule(pattern=self.pattern, repository=self.repository or None,
                         timeout_s=self.timeout_s or None, silence_s=self.silence_s or None,
                         log_bytes=self.log_bytes or None, log_overflow=self.log_overflow,
                         output_bytes=self.output_bytes or None)


class SummitSection(Section, frozen=True):
    """``[summit]``: the API, the target repository and the watched recipe repositories."""

    listen_host: str = "127.0.0.1"
    listen_port: Port = 8080
    #: Needed for retry/cancel/refresh; generated into ``<state>/summit/admin.token`` if empty.
    admin_token: str = ""
    channel: Name = "volatile"
    #: vessel's base URL (indexes for builders, and what is published at first start).
    repository_url: str = "http://127.0.0.1:8090"
    #: vessel's minisign public key (its repo/minisign.pub): what a repository's build
    #: environment provides is read from vessel's record of it, checked with this key.
    vessel_key: str = ""
    poll_interval: Seconds = 60.0
    max_attempts: Annotated[int, msgspec.Meta(ge=1)] = 3
    #: An infrastructure failure's next attempt waits this long, doubled for each further
    #: attempt, at most retry_backoff_max_s.
    retry_backoff_s: Annotated[float, msgspec.Meta(ge=0)] = 10.0
    retry_backoff_max_s: Annotated[float, msgspec.Meta(ge=0)] = 600.0
    #: Seconds an assigned task waits for its builder to claim it before another attempt.
    claim_timeout: Seconds = 60.0
    repositories: list[RepositorySection] = msgspec.field(default_factory=list)
    constraints: list[ConstraintSection] = msgspec.field(default_factory=list)
    limits: list[LimitSection] = msgspec.field(default_factory=list)


class SummitDaemonConfig(BaseConfig, frozen=True):
    summit: SummitSection = SummitSection()


def admin_token(state_dir: Path, configured: str) -> str:
    """The configured token, else the one kept in the state directory (made once, 0600)."""
    if configured:
        return configured
    path = state_dir / "admin.token"
    if path.exists():
        return path.read_text().strip()
    state_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
    return token


def webhook_repos(config: SummitDaemonConfig) -> list[WebhookRepo]:
    return [WebhookRepo(name=r.name, urls=(r.url, *r.webhook_urls), branch=r.branch,
                        github_secret=r.github_secret, gitea_secret=r.gitea_secret,
                        gitlab_token=r.gitlab_token)
            for r in config.summit.repositories]


def _digest(repo: RepositorySection) -> str | None:
    """The repository's configured environment, as a canonical digest (or ``None``)."""
    if not repo.environment:
        return None
    try:
        return check_digest(repo.environment)
    except BuildEnvError as exc:
        raise ConfigError(f"[[summit.repositories]] {repo.name}: environment: {exc}") from None


def settings_of(config: SummitDaemonConfig) -> SummitSettings:
    section = config.summit
    return SummitSettings(
        repositories=[RepoConfig(name=r.name, url=r.url, branch=r.branch,
                                 arches=tuple(r.arches), environment=_digest(r))
                      for r in section.repositories],
        mirrors_dir=config.state.path("summit", "mirrors"),
        channel=section.channel, repository_url=section.repository_url or None,
        vessel_key=Path(section.vessel_key) if section.vessel_key else None,
        poll_interval=section.poll_interval, max_attempts=section.max_attempts,
        claim_timeout=section.claim_timeout,
        constraints=Constraints(tuple(c.rule() for c in section.constraints)),
        priorities={r.name: r.priority for r in section.repositories},
        limits=LimitRules(tuple(rule.rule() for rule in section.limits)),
        backoff=Backoff(section.retry_backoff_s, section.retry_backoff_max_s))


class _SchedulerMetrics(SchedulerObserver):
    """The scheduler's decisions as they happen, into summit's metrics."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.metrics = metrics

    def dispatched(self, count: int) -> None:
        self.metrics.dispatched(count)

    def waited(self, seconds: float, constraint_class: str) -> None:
        self.metrics.observe_dispatch_wait(seconds, constraint_class)


class SummitDaemon:
    """Bus, database, outbox relay, the scheduler and its HTTP API, closed in reverse."""

    name = "summit"

    def __init__(self, config: SummitDaemonConfig, health: Health,
                 bus: Bus | None = None) -> None:
        self.config = config
        self.health = health
        self._bus = bus
        self._host = Host(health)
        self.service: Summit | None = None
        self.live: Live | None = None
        self.metrics = ServiceMetrics("summit")
        self.app = web.Application()
        self.url = ""

    async def start(self) -> None:
        state = self.config.state.path("summit")
        if loopback_across_hosts(self.config.summit.repository_url, self.config.bus.url):
            log.warning("summit.repository_url_loopback", url=self.config.summit.repository_url,
                        hint="builders on other hosts fetch dependencies from this URL; set "
                             "[summit] repository_url to vessel's address on the network")
        bus = await self._host.bus(self.config.bus.url, name="cairn-summit", bus=self._bus,
                                   publish_timeout=self.config.bus.publish_timeout,
                                   metrics=self.metrics, queues=[SUMMIT.queue])
        db, relay = await self._host.outbox_database(state / "summit.sqlite", schema.MIGRATIONS,
                                                     bus)
        self.service = Summit(bus, db, relay, settings_of(self.config))
        token = admin_token(state, self.config.summit.admin_token)
        telemetry = await self._host.telemetry(self.config.mqtt.url, client_id="cairn-summit")
        self.live = Live(self.service, telemetry)
        add_routes(self.app, self.service, token, self.live)
        add_steering(self.app)
        add_dashboard(self.app)
        add_actions(self.app)
        watcher = self.service.watcher
        self.app.add_routes(webhook_routes(
            webhook_repos(self.config), watcher.pushed, watcher.delivery_seen))
        self._watch_metrics()
        self.metrics.mount(self.app)
        self.health.mount(self.app, "/healthz")
        await self.service.start()
        self._host.on_close(self._stop_service)
        await self.live.start()
        self._host.on_close(self.live.stop)
        runner = web.AppRunner(self.app, access_log=None)
        await runner.setup()
        self._host.on_close(runner.cleanup)
        await start_site(runner, self.config.summit.listen_host,
                         self.config.summit.listen_port, "[summit] listen_port")
        port = runner.addresses[0][1]
        self.url = f"http://{self.config.summit.listen_host}:{port}"

    def _watch_metrics(self) -> None:
        """What a scrape reads fresh: tasks by state and builders online (as summit's fleet
        knows them)."""
        service = self.service
        assert service is not None

        async def refresh() -> None:
            # The dashboard's "what limits progress" reads the same figures.
            figures = farm_progress(service)
            self.metrics.set_tasks(figures.counts, states=TaskState)
            self.metrics.set_builders_online(figures.builders_online)
            self.metrics.set_scheduler(figures.busy, figures.slots,
                                       service.scheduler.waiting_reasons())

        service.scheduler.observer = _SchedulerMetrics(self.metrics)
        self.metrics.add_refresher(refresh)

    async def _stop_service(self) -> None:
        if self.service is not None:
            await self.service.stop()

    async def stop(self, timeout: float) -> None:
        await self._host.close()
