"""``cairn events tail`` and ``cairn events publish``: the bus from a terminal.

Both talk to a real broker (``--broker``, default ``$CAIRN_BUS_URL`` or the local
RabbitMQ); the embedded broker lives inside ``cairn up`` and is not reachable from another
process.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import uuid
from pathlib import Path
from typing import Any

from events.bus import Subscription
from events.connect import bus_from_url
from events.envelope import Event, decode_payload, encode_event, new_event
from events.errors import CairnError
from events.names import EventType, binding

DEFAULT_BROKER = "amqp://guest:guest@127.0.0.1:5672/"


def default_broker() -> str:
    return os.environ.get("CAIRN_BUS_URL", DEFAULT_BROKER)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("events", help="watch and publish events on the bus")
    sub = parser.add_subparsers(dest="events_command", metavar="ACTION", required=True)

    tail = sub.add_parser("tail", help="print events live as they are published")
    tail.add_argument("--type", dest="types", action="append", choices=list(EventType),
                      help="only this type (repeatable; default: all)")
    tail.add_argument("--subject", default="*", help="routing-key subject filter (default *)")
    tail.add_argument("--broker", default=None, help="bus URL, several comma-separated "
                      "(default $CAIRN_BUS_URL)")
    tail.add_argument("--count", type=int, default=0, help="exit after this many events")
    tail.set_defaults(func=_tail)

    publish = sub.add_parser("publish", help="validate and publish one event")
    publish.add_argument("type", choices=list(EventType), help="event type")
    publish.add_argument("--data", required=True,
                         help="JSON file with the event's data, or - for standard input")
    publish.add_argument("--source", default="cairn-cli", help="CloudEvents source")
    publish.add_argument("--broker", default=None, help="bus URL, several comma-separated "
                      "(default $CAIRN_BUS_URL)")
    publish.set_defaults(func=_publish)

    from daemon.journal.cli import add_commands

    add_commands(sub, default_broker())


def _read_data(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise CairnError(f"cannot read {path}: {exc.strerror}") from None


async def _publish(args: argparse.Namespace) -> int:
    payload = decode_payload(args.type, _read_data(args.data))
    event = new_event(payload, source=args.source)
    async with bus_from_url(args.broker or default_broker(), name="cairn-cli") as bus:
        await bus.publish(event)
    print(f"published {event.type} {event.id} ({event.routing_key})")
    return 0


async def _tail(args: argparse.Namespace) -> int:
    types = args.types or [t.value for t in EventType]
    subscription = Subscription(
        queue=f"cairn.tail.{uuid.uuid4().hex[:12]}",
        bindings=tuple(binding(t, args.subject) for t in types),
        prefetch=64,
        transient=True,
    )
    seen = 0
    done = asyncio.Event()

    async def show(event: Event[Any]) -> None:
        nonlocal seen
        sys.stdout.write(encode_event(event).decode() + "\n")
        sys.stdout.flush()
        seen += 1
        if args.count and seen >= args.count:
            done.set()

    async with bus_from_url(args.broker or default_broker(), name="cairn-tail") as bus:
        await bus.subscribe(subscription, show)
        print(f"# tailing {', '.join(types)} on {subscription.queue}", file=sys.stderr,
              flush=True)
        await done.wait()
    return 0
