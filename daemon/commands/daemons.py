"""``cairn summit|avalanche|vessel|journal --config FILE``: one service per process."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from daemon.runtime import (
    BaseConfig,
    Health,
    HealthServer,
    LogLevel,
    LogSection,
    configure_logging,
    load_config,
    run_service,
)
from daemon.runtime.lifecycle import Service
from events.errors import ConfigError

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
        if name == "summit":
            parser.add_argument("--replay", type=Path, metavar="FILE",
                                help="feed a recorded run (cairn events export) to a fresh "
                                     "summit and print the task states it reaches")
            parser.add_argument("--dry-run", action="store_true",
                                help="with --replay: publish nothing (required)")
            parser.add_argument("--json", action="store_true", help="with --replay: as JSON")


async def _run(args: argparse.Namespace) -> int:
    if getattr(args, "replay", None) is not None:
        return await _replay(args)
    _, loader = DAEMONS[args.daemon_name]
    config_type, factory = loader()
    config = load_config(args.config, config_type)
    configure_logging(config.log, service=args.daemon_name)
    health = Health(args.daemon_name)
    service = factory(config, health)
    metrics = getattr(service, "metrics", None)
    server = (HealthServer(health, config.health.host, config.health.port,
                           mounts=[metrics.mount] if metrics is not None else [])
              if config.health.enabled else None)
    return await run_service(service, health=health, health_server=server)


async def _replay(args: argparse.Namespace) -> int:
    from daemon.summit.queries import task_json
    from daemon.summit.replay import replay

    if not args.dry_run:
        raise ConfigError("--replay only runs with --dry-run: a replayed summit must not "
                          "publish (use 'cairn events replay --to live' to re-publish)")
    configure_logging(LogSection(level=LogLevel.WARNING), service="summit-replay",
                      stream=sys.stderr)
    tasks = await replay(args.replay)
    if args.json:
        print(json.dumps({"tasks": [task_json(t) for t in tasks]}, indent=2))
        return 0
    for t in tasks:
        print(f"{t.task_id:>6}  {t.state:<11} {t.source:<28} {t.version}-{t.release}")
    return 0
