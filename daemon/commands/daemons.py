"""``cairn summit|avalanche|vessel|journal --config FILE``: one service per process."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from daemon.runtime import (
    BaseConfig,
    Health,
    HealthServer,
    configure_logging,
    load_config,
    run_service,
)
from daemon.runtime.lifecycle import Service

#: Builds a service from its loaded configuration and health registry.
Factory = Callable[[Any, Health], Service]
#: Imported only when that daemon runs, so ``cairn --help`` stays light.
Loader = Callable[[], tuple[type[BaseConfig], Factory]]


def _journal() -> tuple[type[BaseConfig], Factory]:
    from daemon.journal.daemon import JournalDaemon

    return BaseConfig, JournalDaemon


def _avalanche() -> tuple[type[BaseConfig], Factory]:
    from daemon.avalanche.daemon import AvalancheDaemon, AvalancheDaemonConfig

    return AvalancheDaemonConfig, AvalancheDaemon


def _vessel() -> tuple[type[BaseConfig], Factory]:
    from daemon.vessel.daemon import VesselDaemon, VesselDaemonConfig

    return VesselDaemonConfig, VesselDaemon


def _summit() -> tuple[type[BaseConfig], Factory]:
    from daemon.summit.daemon import SummitDaemon, SummitDaemonConfig

    return SummitDaemonConfig, SummitDaemon


DAEMONS: dict[str, tuple[str, Loader]] = {
    "summit": ("run the scheduler: watch recipes, plan, dispatch, serve the API", _summit),
    "vessel": ("run the repository manager: import, sign and serve packages", _vessel),
    "avalanche": ("run a builder: take tasks from the work queue and build them", _avalanche),
    "journal": ("run the journal: record every event on the bus", _journal),
}


def register(subparsers: Any) -> None:
    for name, (help_text, _) in DAEMONS.items():
        parser = subparsers.add_parser(name, help=help_text)
        parser.add_argument("--config", default=None,
                            help="TOML file (default $CAIRN_CONFIG; CAIRN_<SECTION>_<KEY> "
                                 "overrides any key)")
        parser.set_defaults(func=_run, daemon_name=name)


async def _run(args: argparse.Namespace) -> int:
    _, loader = DAEMONS[args.daemon_name]
    config_type, factory = loader()
    config = load_config(args.config, config_type)
    configure_logging(config.log, service=args.daemon_name)
    health = Health(args.daemon_name)
    service = factory(config, health)
    server = (HealthServer(health, config.health.host, config.health.port)
              if config.health.enabled else None)
    return await run_service(service, health_server=server)
