"""``cairn events ls|show|export|replay``: the journal from a terminal."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import aio_pika
from rich.progress import Progress

from daemon.journal.store import MIGRATIONS, Filters, causation_chain, consequences, get, select
from daemon.paths import journal_db
from events.amqp import CONTENT_TYPE
from events.connect import bus_from_url
from events.envelope import Event, encode_event, replayed
from events.errors import CairnError
from events.names import EventType
from events.sqlite import Database


def add_commands(sub: Any, default_broker: str) -> None:
    """Add the journal's subcommands to ``cairn events``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--journal", type=Path, default=None,
                        help="journal database (default: $CAIRN_STATE_DIR/journal.sqlite)")
    filters = argparse.ArgumentParser(add_help=False)
    filters.add_argument("--type", dest="types", action="append", choices=list(EventType))
    filters.add_argument("--since", help="ISO time, inclusive")
    filters.add_argument("--until", help="ISO time, exclusive")
    filters.add_argument("--task", type=int, help="task id")
    filters.add_argument("--correlation", help="correlation id (a whole chain)")
    filters.add_argument("--source", help="package source name")
    filters.add_argument("--limit", type=int)

    ls = sub.add_parser("ls", parents=[common, filters], help="list recorded events")
    ls.set_defaults(func=_ls)
    show = sub.add_parser("show", parents=[common], help="one event with its causation chain")
    show.add_argument("id")
    show.set_defaults(func=_show)
    export = sub.add_parser("export", parents=[common, filters], help="write events out")
    export.add_argument("--format", choices=["jsonl"], default="jsonl")
    export.set_defaults(func=_export)
    replay = sub.add_parser("replay", parents=[common, filters],
                            help="publish recorded events again (same ids, marked replayed)")
    replay.add_argument("--to", required=True,
                        help="'live' (the bus), 'exchange:NAME' on the broker, or a FILE")
    replay.add_argument("--broker", default=default_broker)
    replay.set_defaults(func=_replay)


def _filters(args: argparse.Namespace) -> Filters:
    return Filters(types=args.types or (), since=args.since, until=args.until,
                   task_id=args.task, correlation_id=args.correlation, source=args.source,
                   limit=args.limit)


def _db_path(args: argparse.Namespace) -> Path:
    path: Path = args.journal or journal_db()
    if not path.exists():
        raise CairnError(f"no journal at {path} (give --journal, or set CAIRN_STATE_DIR)")
    return path


def _line(event: Event[Any]) -> str:
    task = getattr(event.data, "task_id", "")
    source = getattr(event.data, "source", "")
    return (f"{event.time.isoformat(timespec='milliseconds')}  {event.type:<17} "
            f"{event.subject:<10} task={task!s:<6} {source:<20} {event.id}")


async def _ls(args: argparse.Namespace) -> int:
    async with Database.open(_db_path(args), MIGRATIONS) as db:
        for event in await select(db, _filters(args)):
            print(_line(event))
    return 0


async def _show(args: argparse.Namespace) -> int:
    async with Database.open(_db_path(args), MIGRATIONS) as db:
        event = await get(db, args.id)
        if event is None:
            raise CairnError(f"no event {args.id} in the journal")
        print(encode_event(event).decode())
        print("\ncaused by:")
        for depth, cause in enumerate(await causation_chain(db, args.id)):
            print(f"  {'  ' * depth}{_line(cause)}")
        print("\ncaused:")
        for effect in await consequences(db, args.id):
            print(f"  {_line(effect)}")
    return 0


async def _export(args: argparse.Namespace) -> int:
    async with Database.open(_db_path(args), MIGRATIONS) as db:
        for event in await select(db, _filters(args)):
            sys.stdout.write(encode_event(event).decode() + "\n")
    return 0


async def _replay(args: argparse.Namespace) -> int:
    async with Database.open(_db_path(args), MIGRATIONS) as db:
        events = [replayed(e) for e in await select(db, _filters(args))]
    with Progress(transient=False) as progress:
        bar = progress.add_task("replaying", total=len(events))
        if args.to == "live":
            async with bus_from_url(args.broker, name="cairn-replay") as bus:
                for event in events:
                    await bus.publish(event)
                    progress.advance(bar)
        elif args.to.startswith("exchange:"):
            await _to_exchange(args.broker, args.to.split(":", 1)[1], events,
                               lambda: progress.advance(bar))
        else:
            text = "".join(encode_event(event).decode() + "\n" for event in events)
            await asyncio.to_thread(Path(args.to).write_text, text, encoding="utf-8")
            progress.update(bar, completed=len(events))
    print(f"replayed {len(events)} event(s) to {args.to}", file=sys.stderr)
    return 0


async def _to_exchange(url: str, exchange_name: str, events: list[Event[Any]],
                       advance: Any) -> None:
    """Replay into another exchange (a debugging copy of the topology, say)."""
    connection = await aio_pika.connect_robust(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(exchange_name)
        for event in events:
            await exchange.publish(
                aio_pika.Message(encode_event(event), content_type=CONTENT_TYPE,
                                 message_id=event.id,
                                 delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=event.routing_key)
            advance()
