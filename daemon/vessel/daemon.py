"""``cairn vessel``: the repository manager as its own daemon."""

from __future__ import annotations

from daemon.host import Host
from daemon.metrics import ServiceMetrics
from daemon.runtime import BaseConfig, Health, Section
from daemon.runtime.address import AUTO, advertised_host, listen_host
from daemon.runtime.config import Port
from daemon.vessel import store
from daemon.vessel.config import VesselConfig
from daemon.vessel.repository import Repository
from daemon.vessel.service import Vessel
from events.bus import Bus
from events.topology import VESSEL


class VesselSection(Section, frozen=True):
    """``[vessel]``: where the repository is served and how much it accepts."""

    #: "": the address this host reaches the broker at (builders on other hosts fetch
    #: their dependencies here); put a proxy in front for anything public.
    listen_host: str = AUTO
    listen_port: Port = 8090
    max_artefact_bytes: int = VesselConfig.max_artefact_bytes
    max_unpacked_bytes: int = VesselConfig.max_unpacked_bytes
    max_members: int = VesselConfig.max_members
    max_file_bytes: int = VesselConfig.max_file_bytes
    #: false only for a farm of ``noop`` builders (empty packages that declare providers).
    verify_provides: bool = True
    download_parallelism: int = 4
    keep_generations: int = 10


class VesselDaemonConfig(BaseConfig, frozen=True):
    vessel: VesselSection = VesselSection()


def repository_config(config: VesselDaemonConfig) -> VesselConfig:
    section = config.vessel
    return VesselConfig(state_dir=config.state.path("vessel"),
                        max_artefact_bytes=section.max_artefact_bytes,
                        max_unpacked_bytes=section.max_unpacked_bytes,
                        max_members=section.max_members,
                        max_file_bytes=section.max_file_bytes,
                        verify_provides=section.verify_provides,
                        download_parallelism=section.download_parallelism,
                        keep_generations=section.keep_generations)


class VesselDaemon:
    """Opens the repository and its database, relays its outbox, imports until stopped."""

    name = "vessel"

    def __init__(self, config: VesselDaemonConfig, health: Health,
                 bus: Bus | None = None) -> None:
        self.config = config
        self.health = health
        self._bus = bus
        self._host = Host(health)
        self.service: Vessel | None = None
        self.metrics = ServiceMetrics("vessel")

    async def start(self) -> None:
        repo_config = repository_config(self.config)
        bus = await self._host.bus(self.config.bus.url, name="cairn-vessel", bus=self._bus,
                                   publish_timeout=self.config.bus.publish_timeout,
                                   metrics=self.metrics, queues=[VESSEL.queue])
        db, relay = await self._host.outbox_database(repo_config.layout.db, store.MIGRATIONS,
                                                     bus)
        repo = Repository.open(repo_config)
        section = self.config.vessel
        bind = listen_host(section.listen_host, self.config.bus.url)
        self.service = Vessel(bus, db, repo, relay, host=bind,
                              advertise=advertised_host(bind, self.config.bus.url),
                              port=section.listen_port, metrics=self.metrics,
                              mounts=[self.metrics.mount, self.health.mount])
        await self.service.start()

    async def stop(self, timeout: float) -> None:
        if self.service is not None:
            await self.service.stop(timeout)
        await self._host.close()
