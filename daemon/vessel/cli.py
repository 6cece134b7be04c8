"""``cairn vessel promote|rollback|generations|prune``: operate a repository's channels.

They act on vessel's state directory (``--state DIR``, default ``$CAIRN_STATE_DIR/vessel``)
and are safe while vessel runs (see :mod:`daemon.vessel.channels`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from daemon.paths import default_state_dir
from daemon.vessel import channels, store
from daemon.vessel.config import VesselConfig
from daemon.vessel.repository import Repository
from events.sqlite import Database


def default_vessel_state() -> Path:
    return default_state_dir() / "vessel"


def register(subparsers: Any) -> None:
    """Add the operator commands under ``cairn vessel``.

    ``cairn vessel --config FILE`` (the daemon, :mod:`daemon.commands.daemons`) may own the
    ``vessel`` parser already: the commands are then added to it as optional subcommands, so
    both ``cairn vessel --config F`` and ``cairn vessel promote A B`` work.
    """
    vessel = subparsers.choices.get("vessel")
    if vessel is None:
        vessel = subparsers.add_parser("vessel", help="the repository manager")
        vessel.set_defaults(func=lambda _args: _usage(vessel))
    sub = vessel.add_subparsers(dest="vessel_command", metavar="COMMAND", required=False)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--state", type=Path, default=None,
                        help="vessel's state directory (default: $CAIRN_STATE_DIR/vessel)")
    promote = sub.add_parser("promote", parents=[common],
                             help="copy a channel's current generation to another channel")
    promote.add_argument("source", metavar="FROM")
    promote.add_argument("target", metavar="TO")
    promote.set_defaults(func=_promote)
    rollback = sub.add_parser("rollback", parents=[common],
                              help="publish a kept generation's packages again, as a new "
                                   "generation")
    rollback.add_argument("channel", metavar="CHANNEL")
    rollback.add_argument("generation", metavar="GENERATION", type=int)
    rollback.set_defaults(func=_rollback)
    listing = sub.add_parser("generations", parents=[common], help="list kept generations")
    listing.add_argument("channel", metavar="CHANNEL", nargs="?")
    listing.set_defaults(func=_generations)
    prune = sub.add_parser("prune", parents=[common],
                           help="drop old generations and unreferenced pool files now")
    prune.add_argument("--keep", type=int, default=VesselConfig.keep_generations)
    prune.set_defaults(func=_prune)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_usage()
    return 2


def _config(args: argparse.Namespace, **overrides: Any) -> VesselConfig:
    return VesselConfig(state_dir=args.state or default_vessel_state(), **overrides)


async def _promote(args: argparse.Namespace) -> int:
    config = _config(args)
    repo = Repository.open(config)
    async with Database.open(config.layout.db, store.MIGRATIONS) as db:
        for p in await channels.promote(repo, db, args.source, args.target):
            print(f"{args.target}/{p.arch}: generation {p.generation} "
                  f"(from {args.source} generation {p.from_generation})")
    return 0


async def _rollback(args: argparse.Namespace) -> int:
    config = _config(args)
    repo = Repository.open(config)
    async with Database.open(config.layout.db, store.MIGRATIONS) as db:
        done = await channels.rollback(repo, db, args.channel, args.generation)
    print(f"{args.channel}/{done.arch}: generation {done.generation} (the packages of "
          f"generation {done.from_generation}) is current")
    return 0


async def _generations(args: argparse.Namespace) -> int:
    config = _config(args)
    async with Database.open(config.layout.db, store.MIGRATIONS) as db, db.read() as conn:
        rows = await store.generations(conn, args.channel)
        heads = {(c, g) for c, _a, g in await store.heads(conn)}
    for row in rows:
        mark = "*" if (row.channel, row.generation) in heads else " "
        print(f"{mark} {row.channel}/{row.arch} {row.generation:>6} {row.created} "
              f"{row.packages:>7} packages  {row.origin}")
    return 0


async def _prune(args: argparse.Namespace) -> int:
    config = _config(args, keep_generations=args.keep)
    repo = Repository.open(config)
    async with Database.open(config.layout.db, store.MIGRATIONS) as db:
        report = await repo.prune(db)
    print(f"pruned {len(report.generations)} generation(s), {report.pool_files} package(s)")
    return 0
