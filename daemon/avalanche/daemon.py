"""``cairn avalanche``: one builder as its own daemon, configured from TOML."""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path
from typing import Annotated

import msgspec

from daemon.avalanche.config import AvalancheConfig, SandboxMode
from daemon.avalanche.service import Avalanche
from daemon.buildenv.builder import HOST
from daemon.host import Host
from daemon.metrics import ServiceMetrics
from daemon.runtime import BaseConfig, Health, Section
from daemon.runtime.address import AUTO, advertised_host, listen_host
from daemon.runtime.config import Port
from events.errors import ConfigError
from events.names import SUBJECT_RE, builder_status_topic
from events.payloads import Arch, LogOverflow
from events.telemetry import Message
from events.topology import builder as builder_subscription

#: Beside the builders' own directories under ``<state>/avalanche/``, what they share: the
#: recipe mirrors (each commit fetched once per host, not once per builder). No builder can
#: be called that (a name does not start with a dot).
SHARED_DIR = ".shared"

#: A builder's name is a routing-key word (summit addresses its events by it); empty: the
#: host's short name.
BuilderName = Annotated[str, msgspec.Meta(pattern=f"^$|{SUBJECT_RE.pattern}")]


class AvalancheSection(Section, frozen=True):
    """``[avalanche]``: who this builder is and how it builds."""

    builder: BuilderName = ""
    arch: Arch = "x86_64"
    slots: int = 1
    backend: str = "script"
    jobs: int = 0
    timeout_s: float = 3600.0
    #: Limits in force where summit's task leaves them unset; 0: none. Passing the log cap
    #: fails the build (log_overflow = "fail") or cuts the log and goes on ("truncate").
    silence_s: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    log_bytes: Annotated[int, msgspec.Meta(ge=0)] = 0
    log_overflow: LogOverflow = LogOverflow.FAIL
    output_bytes: Annotated[int, msgspec.Meta(ge=0)] = 0
    sandbox: SandboxMode = SandboxMode.BWRAP
    #: As root: builds run as host uids build_uid .. build_uid + build_uids - 1 (no account
    #: may use them), one per build at a time across the host.
    build_uid: Annotated[int, msgspec.Meta(ge=1000, le=2**32 - 2)] = 2_000_000_000
    build_uids: Annotated[int, msgspec.Meta(ge=1, le=65536)] = 64
    #: Processes and threads one build may have at once (RLIMIT_NPROC of its uid).
    max_processes: Annotated[int, msgspec.Meta(ge=16)] = 1024
    #: Give recipes with ``networking: true`` the network in their sandbox (else they fail).
    allow_networking: bool = False
    #: Where build trees go ("" = <state>/avalanche/<builder>/builds when the build users can
    #: reach it, else /var/tmp/cairn-builds/...).
    work_dir: str = ""
    #: Where the artefact server listens ("": the address this host reaches the broker at,
    #: so vessel on another host can pull), and the URL other hosts reach it at if that
    #: differs (a proxy, NAT).
    listen_host: str = AUTO
    listen_port: Port = 0
    public_url: str = ""
    retention_s: float = 7 * 86400.0
    #: The build environment of builds whose task names none (a sha256 digest vessel lists),
    #: vessel's base URL to pull environments from and its minisign public key. "" builds
    #: only tasks that name an environment; "host" (by name, never by default) lets such
    #: builds run on the host's own system, not hermetic.
    environment: str = ""
    environment_url: str = ""
    environment_key: str = ""
    environments_kept: Annotated[int, msgspec.Meta(ge=1)] = 3
    #: Free-form capabilities summit can match tasks against (``big``, ``kvm``...).
    features: list[str] = msgspec.field(default_factory=list)
    #: What the builder offers a build; 0: not declared.
    memory_mb: int = 0
    disk_mb: int = 0
    #: Seconds between two reports to summit; summit gives up on it after three missed.
    heartbeat_s: float = 10.0


class AvalancheDaemonConfig(BaseConfig, frozen=True):
    avalanche: AvalancheSection = AvalancheSection()


def core_config(config: AvalancheDaemonConfig) -> AvalancheConfig:
    section = config.avalanche
    builder = section.builder or socket.gethostname().split(".")[0]
    if not SUBJECT_RE.match(builder):
        raise ConfigError(f"[avalanche] builder is empty and the host name {builder!r} is not "
                          "a valid builder name (letters, digits, _ + -): set one")
    core = AvalancheConfig(root=config.state.path("avalanche", builder), builder=builder,
                           arch=section.arch, backend=section.backend,
                           timeout_s=section.timeout_s, sandbox=section.sandbox,
                           silence_s=section.silence_s or None,
                           log_bytes=section.log_bytes or None,
                           log_overflow=section.log_overflow,
                           output_bytes=section.output_bytes or None,
                           build_uid=section.build_uid, build_uids=section.build_uids,
                           max_processes=section.max_processes,
                           allow_networking=section.allow_networking,
                           work_dir=Path(section.work_dir) if section.work_dir else None,
                           hidden=(config.state.path(),),
                           environment=(None if section.environment in ("", HOST)
                                        else section.environment),
                           host_builds=section.environment == HOST,
                           environment_url=section.environment_url or None,
                           environment_key=(Path(section.environment_key)
                                            if section.environment_key else None),
                           environments_kept=section.environments_kept,
                           mirror_cache=config.state.path("avalanche", SHARED_DIR))
    return dataclasses.replace(core, jobs=section.jobs) if section.jobs > 0 else core


class AvalancheDaemon:
    """Connects to the bus and telemetry (with a last will saying ``offline``), then builds."""

    def __init__(self, config: AvalancheDaemonConfig, health: Health) -> None:
        self.config = config
        self.health = health
        self.core = core_config(config)
        self.name = f"avalanche-{self.core.builder}"
        self._host = Host(health)
        self.service: Avalanche | None = None
        self.metrics = ServiceMetrics(self.name)

    async def start(self) -> None:
        bus = await self._host.bus(self.config.bus.url, name=self.name,
                                   publish_timeout=self.config.bus.publish_timeout,
                                   metrics=self.metrics,
                                   queues=[builder_subscription(self.core.builder).queue])
        will = Message(builder_status_topic(self.core.builder),
                       b'{"builder": "%s", "state": "offline"}' % self.core.builder.encode(),
                       retain=True)
        telemetry = await self._host.telemetry(self.config.mqtt.url, client_id=self.name,
                                               will=will)
        section = self.config.avalanche
        bind = listen_host(section.listen_host, self.config.bus.url)
        self.service = Avalanche(bus, telemetry, self.core, slots=section.slots,
                                 host=bind, port=section.listen_port,
                                 advertise=advertised_host(bind, self.config.bus.url),
                                 public_url=section.public_url or None,
                                 retention_s=section.retention_s, metrics=self.metrics,
                                 mounts=[self.metrics.mount, self.health.mount],
                                 features=section.features,
                                 memory_mb=section.memory_mb or None,
                                 disk_mb=section.disk_mb or None,
                                 heartbeat_s=section.heartbeat_s)
        await self.service.start()

    async def stop(self, timeout: float) -> None:
        if self.service is not None:
            await self.service.stop(timeout)
        await self._host.close()
