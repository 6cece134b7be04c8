"""``cairn up``: the whole farm in one process — summit, N builders, vessel, journal.

By default on the embedded broker and in-process telemetry, with every service's SQLite
state under one directory; with ``--broker``/``--mqtt`` the same services use RabbitMQ and
Mosquitto. Each service is the very class its own daemon runs, so what ``cairn up`` shows is
what a distributed deployment does.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from importlib.resources import as_file
from pathlib import Path
from typing import Any

import structlog

import examples
from daemon.avalanche.config import SandboxMode
from daemon.avalanche.daemon import AvalancheDaemon, AvalancheDaemonConfig, AvalancheSection
from daemon.buildenv.builder import HOST
from daemon.commands.upenv import UpEnvironment
from daemon.journal.daemon import JournalDaemon
from daemon.runtime import BaseConfig, BusSection, Health, MqttSection, StateSection
from daemon.summit.daemon import (
    RepositorySection,
    SummitDaemon,
    SummitDaemonConfig,
    SummitSection,
)
from daemon.summit.planning.states import TaskState
from daemon.vessel.daemon import VesselDaemon, VesselDaemonConfig, VesselSection
from daemon.vessel.environments import EnvironmentStore
from events import outbox
from events.errors import CairnError

log = structlog.get_logger("cairn.up")

#: States after which a task will not change by itself.
FINAL = frozenset({TaskState.COMPLETED, TaskState.FAILED, TaskState.CANCELLED,
                   TaskState.SUPERSEDED})
#: States in which something is (or is about to be) happening.
MOVING = frozenset({TaskState.NEW, TaskState.READY, TaskState.BUILDING,
                    TaskState.PUBLISHING})


@dataclass(frozen=True)
class UpOptions:
    state: Path
    recipes: str | None = None
    branch: str = "main"
    builders: int = 2
    backend: str = "script"
    broker: str = "memory://"
    mqtt: str = "memory://"
    port: int = 8080
    arch: str = "x86_64"
    poll_interval: float = 5.0
    #: The build environment every build runs in; ``None``: this machine's own system
    #: (not hermetic), because of ``host_reason``.
    environment: UpEnvironment | None = None
    host_reason: str = ""


def prepare_recipes(options: UpOptions) -> str:
    """The repository URL summit watches: the given one, or the bundled examples copied
    into a git repository under the state directory on first run."""
    if options.recipes:
        return options.recipes
    repo = options.state / "recipes"
    if not (repo / ".git").exists():
        with as_file(examples.recipes()) as source:
            shutil.copytree(source, repo, dirs_exist_ok=True)
        for args in (["init", "-q", "-b", options.branch], ["add", "-A"],
                     ["-c", "user.name=cairn", "-c", "user.email=cairn@localhost", "commit",
                      "-q", "-m", "Example recipes bundled with cairn"]):
            done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True,
                                  text=True, check=False)
            if done.returncode != 0:
                raise CairnError(f"cannot make the example repository at {repo}: "
                                 f"git {' '.join(args)}: {done.stderr.strip()}")
    return str(repo)


@dataclass
class EmbeddedFarm:
    """The running services of ``cairn up``."""

    options: UpOptions
    repository_url: str
    journal: JournalDaemon
    vessel: VesselDaemon
    summit: SummitDaemon
    builders: list[AvalancheDaemon] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    @property
    def summit_url(self) -> str:
        return self.summit.url

    @property
    def vessel_url(self) -> str:
        return self.vessel.service.url if self.vessel.service else ""

    def tasks(self) -> list[Any]:
        service = self.summit.service
        if service is None:
            return []
        return service.scheduler.all_tasks()

    def counts(self) -> dict[str, int]:
        return dict(Counter(str(t.state) for t in self.tasks()))

    def building(self) -> dict[str, list[int]]:
        return {b.core.builder: b.service.running() if b.service else []
                for b in self.builders}

    async def idle(self) -> bool:
        """Planned at least once, nothing moving, nothing waiting in the outbox or queues."""
        service = self.summit.service
        if service is None or not any(p.commit for p in service.scheduler.planners.values()):
            return False
        if any(t.state in MOVING for t in self.tasks()):
            return False
        pending, _parked = await outbox.counts(service.db)
        return pending == 0

    def summary(self) -> dict[str, Any]:
        tasks = self.tasks()
        return {
            "tasks": self.counts(),
            "failed": [{"id": t.task_id, "source": t.source, "release": t.release,
                        "reason": t.failure} for t in tasks if t.state is TaskState.FAILED],
            "blocked": [{"id": t.task_id, "source": t.source, "release": t.release,
                         "blocked_by": [b.to_json() for b in t.blocked_by]}
                        for t in tasks if t.state is TaskState.BLOCKED],
            "repository": {"path": str(self.vessel.service.repo.layout.root)
                           if self.vessel.service else "", "url": self.vessel_url},
            "summit": self.summit_url,
            **self.provenance(),
            "elapsed_s": round(time.monotonic() - self.started, 3),
        }

    def provenance(self) -> dict[str, Any]:
        """What the builds run in, for the summary."""
        env = self.options.environment
        if env is None:
            return {"hermetic": False, "environment": None,
                    "not_hermetic": not_hermetic_note(self.options.host_reason)}
        return {"hermetic": True, "environment": {"name": env.name, "digest": env.digest,
                                                  "archive": str(env.archive)}}

    def all_completed(self) -> bool:
        return all(t.state is TaskState.COMPLETED for t in self.tasks())


def not_hermetic_note(why: str = "") -> str:
    """What ``cairn up`` says about builds on this machine's own system (its builders are
    configured with ``environment = "host"`` by name): why, and what to do for hermetic
    ones."""
    because = f" ({why})" if why else ""
    return ("not hermetic: builds run on this machine's own system, so what it has installed "
            f"can end up in the packages, and every package says so{because}. For hermetic "
            "builds, let `cairn up` make its build environment (without --host), or name one "
            "with --environment (README, \"Build environments\").")


def _base(options: UpOptions) -> dict[str, Any]:
    return {"bus": BusSection(url=options.broker), "mqtt": MqttSection(url=options.mqtt),
            "state": StateSection(dir=str(options.state))}


async def start_farm(options: UpOptions) -> EmbeddedFarm:
    """Start every service, in an order that lets each one's events find their queues."""
    options.state.mkdir(parents=True, exist_ok=True)
    repository_url = prepare_recipes(options)
    base = _base(options)
    journal = JournalDaemon(BaseConfig(**base), Health("journal"))
    vessel = VesselDaemon(VesselDaemonConfig(**base, vessel=VesselSection(
        listen_port=options.port + 1 if options.port else 0,
        # noop builders publish empty packages that declare what a real build would provide
        verify_provides=options.backend != "noop")), Health("vessel"))
    farm_parts: list[Any] = []
    env = options.environment
    try:
        first: list[Any] = [journal, vessel]
        for part in first:
            await part.start()
            farm_parts.append(part)
        assert vessel.service is not None
        if env is not None:
            await asyncio.to_thread(_store_environment, vessel, env)
        summit = SummitDaemon(SummitDaemonConfig(**base, summit=SummitSection(
            listen_port=options.port, repository_url=vessel.service.url,
            vessel_key=str(vessel.service.repo.layout.public_key),
            poll_interval=options.poll_interval,
            repositories=[RepositorySection(name="recipes", url=repository_url,
                                            branch=options.branch, arches=[options.arch],
                                            environment=env.digest if env else "")],
        )), Health("summit"))
        farm = EmbeddedFarm(options, repository_url, journal, vessel, summit)
        for number in range(1, options.builders + 1):
            farm.builders.append(AvalancheDaemon(AvalancheDaemonConfig(
                **base, avalanche=_builder(number, options, vessel)),
                Health(f"avalanche-{number}")))
        # Summit before the builders: it hears each builder's first report and can give it
        # work at once (a builder's queue exists before the builder reports itself).
        await summit.start()
        farm_parts.append(summit)
        await _apply_environment(summit, env)
        for part in farm.builders:
            await part.start()
            farm_parts.append(part)
    except BaseException:
        for part in reversed(farm_parts):
            await part.stop(5.0)
        raise
    return farm


def _store_environment(vessel: VesselDaemon, env: UpEnvironment) -> None:
    """The environment in vessel (once per state directory), where builders pull it."""
    assert vessel.service is not None
    repo = vessel.service.repo
    EnvironmentStore(repo.layout, repo.key).push(env.archive)


def _builder(number: int, options: UpOptions, vessel: VesselDaemon) -> AvalancheSection:
    """A builder that builds only in the environment summit names (pulled from this vessel
    by digest, checked with its key), or, without one, on the host's system by name."""
    assert vessel.service is not None
    hermetic = options.environment is not None
    return AvalancheSection(
        builder=f"local-{number}", arch=options.arch, backend=options.backend,
        sandbox=SandboxMode.BWRAP, environment="" if hermetic else HOST,
        environment_url=vessel.service.url if hermetic else "",
        environment_key=str(vessel.service.repo.layout.public_key) if hermetic else "")


async def _apply_environment(summit: SummitDaemon, env: UpEnvironment | None) -> None:
    """A state directory last run in another environment (or on the host): running
    ``cairn up`` with this one is the operator's request to rebuild in it."""
    assert summit.service is not None
    wanted = env.digest if env else None
    planners = summit.service.scheduler.planners.values()
    if any(p.repo.environment != wanted for p in planners):
        changed = await summit.service.operations.use_environment("recipes", wanted)
        log.info("up.environment_changed", environment=wanted, tasks=len(changed))


async def stop_farm(farm: EmbeddedFarm, timeout: float = 10.0) -> None:
    """Builders and summit first (no new work), then vessel and the journal."""
    parts: list[Any] = [farm.summit, *farm.builders, farm.vessel, farm.journal]
    for part in parts:
        try:
            await part.stop(timeout)
        except Exception as exc:  # keep stopping the others
            log.warning("up.stop_failed", service=getattr(part, "name", "?"), error=repr(exc))
