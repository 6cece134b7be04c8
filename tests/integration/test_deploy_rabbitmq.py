"""deploy/rabbitmq: the generated definitions, imported into the real broker, give each
service exactly what it needs and refuse the rest.

Each module run imports the definitions (as ``cairn deploy rabbitmq-definitions`` writes
them, with a unique vhost and user prefix and known passwords) with ``rabbitmqctl
import_definitions``, then connects as each service. Vhost and users are deleted at the end.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import aio_pika
import aiormq
import pytest
from aio_pika.abc import AbstractChannel

from daemon.deploy.rabbitmq import accounts, build_definitions, password_hash
from events import payloads as p
from events import topology
from events.amqp import AmqpBus
from events.bus import DeadLetter
from events.envelope import Event, decode_event, encode_event, new_event
from events.errors import RejectEvent
from events.names import EVENTS_EXCHANGE
from tests.conftest import RABBITMQ_HOST, RABBITMQ_PORT, rabbitmq_unavailable

pytestmark = pytest.mark.rabbitmq

ARCH = "x86_64"
COMMIT = "c" * 40
ACCOUNTS = tuple(a.user for a in accounts([ARCH]))


def _ctl(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=60,
                          check=False, input=stdin)


@dataclass(frozen=True)
class Imported:
    vhost: str
    prefix: str
    passwords: dict[str, str]

    def url(self, account: str) -> str:
        return (f"amqp://{self.prefix}{account}:{self.passwords[account]}"
                f"@{RABBITMQ_HOST}:{RABBITMQ_PORT}/{self.vhost}")


def _wait_for_import(vhost: str, queues: set[str]) -> None:
    """``import_definitions`` returns before the import has finished: wait for the queues."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done = _ctl("list_queues", "-p", vhost, "name", "--quiet", "--no-table-headers")
        if done.returncode == 0 and queues <= set(done.stdout.split()):
            return
        time.sleep(0.3)
    pytest.fail(f"the imported queues did not appear in vhost {vhost}")


@pytest.fixture(scope="module")
def imported() -> Iterator[Imported]:
    if shutil.which("rabbitmqctl") is None:
        rabbitmq_unavailable("rabbitmqctl is not installed (needed to import definitions)")
    try:
        socket.create_connection((RABBITMQ_HOST, RABBITMQ_PORT), timeout=2).close()
    except OSError as exc:
        rabbitmq_unavailable(f"nothing listens on {RABBITMQ_HOST}:{RABBITMQ_PORT} ({exc})")
    tag = uuid.uuid4().hex[:8]
    target = Imported(vhost=f"cairn-deploy-{tag}", prefix=f"t{tag}-",
                      passwords={a: secrets.token_hex(12) for a in ACCOUNTS})
    definitions = build_definitions(
        [ARCH], vhost=target.vhost, user_prefix=target.prefix,
        password_hashes={a: password_hash(pw) for a, pw in target.passwords.items()})
    # From standard input: Debian's rabbitmqctl runs as the rabbitmq user, which cannot
    # read pytest's private temporary directory.
    done = _ctl("import_definitions", "--format", "json", stdin=json.dumps(definitions))
    if done.returncode != 0:
        pytest.fail(f"rabbitmqctl import_definitions failed: {done.stderr.strip()}")
    try:
        _wait_for_import(target.vhost, {q["name"] for q in definitions["queues"]})
        yield target
    finally:
        _ctl("delete_vhost", target.vhost)
        for account in ACCOUNTS:
            _ctl("delete_user", target.prefix + account)


async def _channel_of(url: str) -> tuple[aio_pika.abc.AbstractConnection, AbstractChannel]:
    connection = await aio_pika.connect(url, timeout=10)
    return connection, await connection.channel(publisher_confirms=True)


Action = Callable[[AbstractChannel], Awaitable[Any]]


def publish(routing_key: str) -> Action:
    async def act(channel: AbstractChannel) -> None:
        exchange = await channel.get_exchange(EVENTS_EXCHANGE, ensure=False)
        await exchange.publish(aio_pika.Message(b"{}"), routing_key, timeout=10)
    return act


async def _ignore(message: aio_pika.abc.AbstractIncomingMessage) -> None:
    return None


def consume(queue: str) -> Action:
    async def act(channel: AbstractChannel) -> None:
        declared = await channel.get_queue(queue, ensure=False)
        await declared.consume(_ignore, timeout=10)
    return act


def bind_private(pattern: str) -> Action:
    """A builder may declare a control queue; it may not bind it to other people's events."""
    async def act(channel: AbstractChannel) -> None:
        queue = await channel.declare_queue(f"cairn.avalanche.spy-{uuid.uuid4().hex[:6]}",
                                            exclusive=True, auto_delete=True)
        await queue.bind(EVENTS_EXCHANGE, pattern, timeout=10)
    return act


def delete_queue(queue: str) -> Action:
    async def act(channel: AbstractChannel) -> None:
        await channel.queue_delete(queue, timeout=10)
    return act


REFUSED: list[tuple[str, str, Action, str]] = [
    ("avalanche", "publish package-published", publish("package-published.volatile"),
     "package-published.volatile"),
    ("avalanche", "publish task-ready", publish(f"task-ready.{ARCH}"), "task-ready"),
    ("avalanche", "consume vessel's queue", consume(topology.VESSEL.queue), "cairn.vessel"),
    ("avalanche", "consume summit's queue", consume(topology.SUMMIT.queue), "cairn.summit"),
    ("avalanche", "bind to commit-seen", bind_private("commit-seen.*"),
     "commit-seen.*"),
    ("avalanche", "delete vessel's queue", delete_queue(topology.VESSEL.queue), "cairn.vessel"),
    ("vessel", "publish build-done", publish(f"build-done.{ARCH}"), "build-done"),
    ("vessel", "consume the work queue", consume(topology.work(ARCH).queue), "cairn.work"),
    ("journal", "publish anything", publish("commit-seen.recipes"), "exchange 'cairn.events'"),
    ("summit", "publish build-done", publish(f"build-done.{ARCH}"), "build-done"),
    ("summit", "consume vessel's queue", consume(topology.VESSEL.queue), "cairn.vessel"),
]


@pytest.mark.parametrize(("account", "what", "action", "named"), REFUSED,
                         ids=[f"{r[0]}-{r[1].replace(' ', '-')}" for r in REFUSED])
async def test_broker_refuses(imported: Imported, account: str, what: str, action: Action,
                              named: str) -> None:
    connection, channel = await _channel_of(imported.url(account))
    async with connection:
        with pytest.raises(aiormq.exceptions.ChannelAccessRefused) as refused:
            await asyncio.wait_for(action(channel), 20)
    assert "ACCESS_REFUSED" in str(refused.value)
    assert named in str(refused.value), f"{what}: refused for another reason: {refused.value}"


async def test_builder_may_do_its_own_work_with_raw_amqp(imported: Imported) -> None:
    """The same channel operations that are refused above succeed on the builder's own
    resources: consume its work queue, bind its control queue, publish its two types."""
    connection, channel = await _channel_of(imported.url("avalanche"))
    async with connection:
        await consume(topology.work(ARCH).queue)(channel)
        control = await channel.declare_queue(f"cairn.avalanche.b-{uuid.uuid4().hex[:6]}",
                                              exclusive=True, auto_delete=True)
        await control.bind(EVENTS_EXCHANGE, f"task-cancelled.{ARCH}", timeout=10)
        await publish(f"build-started.{ARCH}")(channel)
        await publish(f"build-done.{ARCH}")(channel)
    # Those two bodies are not events: clear them from the consumers' queues again.
    for queue in (topology.SUMMIT.queue, topology.VESSEL.queue, topology.JOURNAL.queue):
        _ctl("purge_queue", "-p", imported.vhost, queue)


def test_policy_applies_to_every_consuming_queue(imported: Imported) -> None:
    done = _ctl("list_queues", "-p", imported.vhost, "name", "policy", "--quiet",
                "--no-table-headers")
    # "name<TAB>policy", the policy empty for queues without one.
    policies = {name: policy.strip() for name, _, policy in
                (line.partition("\t") for line in done.stdout.splitlines() if line.strip())}
    consuming = [topology.SUMMIT.queue, topology.VESSEL.queue, topology.JOURNAL.queue,
                 topology.work(ARCH).queue]
    assert {policies[q] for q in consuming} == {"cairn-dead-letter-at-least-once"}
    assert policies[topology.work(ARCH).dead_letter_queue] == ""


class Inbox:
    """Events a handler received, awaitable by predicate."""

    def __init__(self) -> None:
        self.events: list[Event[Any]] = []
        self._changed = asyncio.Event()

    async def add(self, event: Event[Any]) -> None:
        self.events.append(event)
        self._changed.set()

    async def wait_for(self, types: list[str], timeout: float = 20) -> None:
        async def until() -> None:
            while sorted(e.type for e in self.events) != sorted(types):
                self._changed.clear()
                await self._changed.wait()
        await asyncio.wait_for(until(), timeout)

    async def wait_seen(self, event_type: str, timeout: float = 20) -> None:
        """Wait until an event of this type arrived, whatever else did."""
        async def until() -> None:
            while event_type not in [e.type for e in self.events]:
                self._changed.clear()
                await self._changed.wait()
        await asyncio.wait_for(until(), timeout)


def _task_ready(task_id: int) -> p.TaskReady:
    return p.TaskReady(task_id=task_id, source="zlib", version="1.3", release=4, arch=ARCH,
                       repository="recipes", repository_url="file:///srv/recipes",
                       commit=COMMIT, recipe_path="z/zlib")


async def test_every_service_works_with_its_own_account(imported: Imported) -> None:
    """The real buses, each with its own credentials: every service declares its topology
    over the imported one (same arguments, or the broker would refuse), a task goes
    summit -> builder -> summit and vessel, a cancellation reaches the builder's control
    queue, and a task the builder rejects lands in the dead letters summit reads."""
    buses = {a: AmqpBus(imported.url(a), name=f"test-{a}") for a in ACCOUNTS}
    inboxes = {name: Inbox() for name in ("summit", "vessel", "journal", "control", "dead")}
    builder = buses["avalanche"]

    async def build(event: Event[Any]) -> None:
        ready: p.TaskReady = event.data
        if ready.task_id == 99:
            raise RejectEvent("this recipe kills builders")
        await builder.publish(new_event(
            p.BuildStarted(task_id=ready.task_id, builder="b1", arch=ARCH),
            source="avalanche", causation=event))
        await builder.publish(new_event(p.BuildDone(
            task_id=ready.task_id, builder="b1", source=ready.source, version=ready.version,
            release=ready.release, build_release=1, arch=ARCH, outcome=p.Outcome.SUCCESS),
            source="avalanche", causation=event))

    for bus in buses.values():
        await bus.connect()
    try:
        summit = buses["summit"]
        await summit.declare(topology.work(ARCH))
        await summit.subscribe(topology.SUMMIT, inboxes["summit"].add)
        await summit.subscribe(topology.work_dead_letters(ARCH), inboxes["dead"].add)
        await buses["vessel"].subscribe(topology.VESSEL, inboxes["vessel"].add)
        await buses["journal"].subscribe(topology.JOURNAL, inboxes["journal"].add)
        await builder.subscribe(topology.control("b1", ARCH), inboxes["control"].add)
        await builder.subscribe(topology.work(ARCH), build)

        await summit.publish(new_event(_task_ready(7), source="summit"))
        await inboxes["summit"].wait_for(["build-started", "build-done"])
        await inboxes["vessel"].wait_for(["build-done"])
        await summit.publish(new_event(p.TaskCancelled(task_id=7, arch=ARCH), source="summit"))
        await inboxes["control"].wait_for(["task-cancelled"])
        await summit.publish(new_event(_task_ready(99), source="summit"))
        await inboxes["dead"].wait_for(["task-ready"])
        await inboxes["journal"].wait_for(["task-ready", "build-started", "build-done",
                                           "task-cancelled", "task-ready"])
    finally:
        await asyncio.gather(*(bus.close() for bus in buses.values()))
    assert [e.data.task_id for e in inboxes["dead"].events] == [99]
    assert {e.source for e in inboxes["summit"].events} == {"avalanche"}


async def test_builder_cannot_smuggle_events_onto_its_own_routing_key(imported: Imported) -> None:
    """The builder's account may publish ``build-done.*`` and nothing else. It sends a
    ``package-published`` (only vessel may) and a ``commit-seen`` (only summit may) on a
    ``build-done.x86_64`` key; the broker lets both through, and summit, vessel and the
    journal, each with its own account, dead-letter them unhandled, naming the key."""
    forged = [
        new_event(p.PackagePublished(
            task_id=7, source="zlib", release=4, build_release=1, arch=ARCH, channel="volatile",
            generation=3, packages=[p.PublishedPackage(name="zlib", version="1.3", release=4,
                                                       build_release=1, sha256="d" * 64)]),
            source="avalanche"),
        new_event(p.CommitSeen(repository="recipes", url="https://git.example/recipes",
                               branch="main", new_commit=COMMIT, old_commit="a" * 40),
                  source="avalanche"),
    ]
    roles = {"summit": topology.SUMMIT, "vessel": topology.VESSEL, "journal": topology.JOURNAL}
    # Only the operator's account may read dead letters.
    buses = {a: AmqpBus(imported.url(a), name=f"test-{a}")
             for a in (*roles, "avalanche", "operator")}
    inboxes = {a: Inbox() for a in roles}
    for bus in buses.values():
        await bus.connect()
    try:
        for account, subscription in roles.items():
            await buses[account].subscribe(subscription, inboxes[account].add)
        connection, channel = await _channel_of(imported.url("avalanche"))
        async with connection:
            exchange = await channel.get_exchange(EVENTS_EXCHANGE, ensure=False)
            for event in forged:
                await exchange.publish(aio_pika.Message(encode_event(event)),
                                       f"build-done.{ARCH}", timeout=10)

        async def dead(account: str) -> list[DeadLetter]:
            deadline = time.monotonic() + 20
            while True:
                found = await buses["operator"].dead_letters(roles[account].queue)
                if len(found) >= len(forged) or time.monotonic() > deadline:
                    return found
                await asyncio.sleep(0.1)

        dead_letters = {a: await dead(a) for a in roles}
        # A genuine build-done sent afterwards on the same key is handled: the consumers
        # went on, and the forged events were never handed to them.
        await buses["avalanche"].publish(new_event(p.BuildDone(
            task_id=7, builder="b1", source="zlib", version="1.3", release=4, build_release=1,
            arch=ARCH, outcome=p.Outcome.SUCCESS), source="avalanche"))
        for inbox in inboxes.values():
            await inbox.wait_seen("build-done")
    finally:
        for subscription in roles.values():
            await buses["operator"].dead_letters(subscription.queue, remove=True)
        await asyncio.gather(*(bus.close() for bus in buses.values()))
    for account, found in dead_letters.items():
        assert sorted(decode_event(d.body).type for d in found) == \
            ["commit-seen", "package-published"], account
        for letter in found:
            event = decode_event(letter.body)
            assert letter.routing_key == f"build-done.{ARCH}"
            assert letter.reason == (f"routing key 'build-done.{ARCH}' does not match the "
                                     f"event's type and subject ({event.routing_key!r})")
    assert {a: [e.type for e in inbox.events] for a, inbox in inboxes.items()} == \
        {a: ["build-done"] for a in roles}
