"""``cairn``: one command line for every service and tool.

Each command family lives in its own module with a ``register(subparsers)`` function; a
command's handler returns an exit code, or a coroutine that returns one. Errors derived from
:class:`events.errors.CairnError` are printed as one clear line and exit with status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import sys
from collections.abc import Sequence

from events.errors import CairnError

#: Modules that add subcommands; each has ``register(subparsers)``.
COMMAND_MODULES: tuple[str, ...] = (
    "daemon.commands.events",
    "daemon.deploy.cli",
    "daemon.commands.daemons",
    "daemon.commands.up",
    "daemon.summit.plancli",
    "daemon.summit.cli",
    "daemon.vessel.cli",
    "daemon.repo.cli",
    "daemon.avalanche.cli",
    "daemon.buildenv.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cairn",
        description="cairn: package build infrastructure (summit, avalanche, vessel, journal)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
        if inspect.iscoroutine(result):
            result = asyncio.run(result)
    except CairnError as exc:
        print(f"cairn: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
