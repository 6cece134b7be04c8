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
from events.amqp import AmqpBus, queue_arguments
from events.bus import DeadLetter
from events.envelope import Event, decode_event, encode_event, new_event
from events.errors import RejectEvent
from events.names import EVENTS_EXCHANGE
from tests.conftest import RABBITMQ_HOST, RABBITMQ_PORT, rabbitmq_unavailable

pytestmark = pytest.mark.rabbitmq

ARCH = "x86_64"
COMMIT = "c" * 40
ACCOUNTS = tuple(a.user for a in accounts())


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
        vhost=target.vhost, user_prefix=target.prefix,
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


def bind_own_queue(pattern: str) -> Action:
    """A builder may declare its own queue; it may not bind it to other people's events."""
    async def act(channel: AbstractChannel) -> None:
        mine = topology.builder(f"spy-{uuid.uuid4().hex[:6]}")
        queue = await channel.declare_queue(mine.queue, durable=True,
                                            arguments=queue_arguments(mine))
        await queue.bind(EVENTS_EXCHANGE, pattern, timeout=10)
    return act


def delete_queue(queue: str) -> Action:
    async def act(channel: AbstractChannel) -> None:
        await channel.queue_delete(queue, timeout=10)
    return act


REFUSED: list[tuple[str, str, Action, str]] = [
    ("avalanche", "publish package-published", publish("package-published.volatile"),
     "package-published.volatile"),
    ("avalanche", "publish task-ready", publish("task-ready.b1"), "task-ready"),
    ("avalanche", "publish build-accepted", publish("build-accepted.volatile"),
     "build-accepted"),
    ("avalanche", "publish build-admitted", publish("build-admitted.b1"), "build-admitted"),
    ("avalanche", "consume vessel's queue", consume(topology.VESSEL.queue), "cairn.vessel"),
    ("avalanche", "consume summit's queue", consume(topology.SUMMIT.queue), "cairn.summit"),
    ("avalanche", "bind to commit-seen", bind_own_queue("commit-seen.*"),
     "commit-seen.*"),
    ("avalanche", "bind to build-accepted", bind_own_queue("build-accepted.*"),
     "build-accepted.*"),
    ("avalanche", "delete vessel's queue", delete_queue(topology.VESSEL.queue), "cairn.vessel"),
    ("vessel", "publish build-done", publish(f"build-done.{ARCH}"), "build-done"),
    ("vessel", "consume a builder's queue", consume(topology.builder("b1").queue),
     "cairn.builder.b1"),
    ("vessel", "publish build-accepted", publish("build-accepted.volatile"), "build-accepted"),
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
    resources: declare, bind and consume its own queue, publish its three types."""
    connection, channel = await _channel_of(imported.url("avalanche"))
    async with connection:
        mine = topology.builder(f"b-{uuid.uuid4().hex[:6]}")
        queue = await channel.declare_queue(mine.queue, durable=True,
                                            arguments=queue_arguments(mine))
        for key in mine.bindings:
            await queue.bind(EVENTS_EXCHANGE, key, timeout=10)
        await consume(mine.queue)(channel)
        await publish(f"build-started.{ARCH}")(channel)
        await publish(f"build-done.{ARCH}")(channel)
        await publish("builder-seen.b1")(channel)
    # Those two bodies are not events: clear them from the consumers' queues again.
    for queue in (topology.SUMMIT.queue, topology.VESSEL.queue, topology.JOURNAL.queue):
        _ctl("purge_queue", "-p", imported.vhost, queue)


def test_policy_applies_to_every_consuming_queue(imported: Imported) -> None:
    done = _ctl("list_queues", "-p", imported.vhost, "name", "policy", "--quiet",
                "--no-table-headers")
    # "name<TAB>policy", the policy empty for queues without one.
    policies = {name: policy.strip() for name, _, policy in
                (line.partition("\t") for line in done.stdout.splitlines() if line.strip())}
    consuming = [topology.SUMMIT.queue, topology.VESSEL.queue, topology.JOURNAL.queue]
    assert {policies[q] for q in consuming} == {"cairn-dead-letter-at-least-once"}
    assert policies[topology.SUMMIT.dead_letter_queue] == ""


async def test_policy_applies_to_a_builder_queue_declared_later(imported: Imported) -> None:
    mine = topology.builder(f"b-{uuid.uuid4().hex[:6]}")
    bus = AmqpBus(imported.url("avalanche"), name="test-avalanche")
    async with bus:
        await bus.declare(mine)
    for _ in range(50):
        done = _ctl("list_queues", "-p", imported.vhost, "name", "policy", "--quiet",
                    "--no-table-headers")
        policies = dict(line.split("\t", 1) for line in done.stdout.splitlines()
                        if "\t" in line)
        if policies.get(mine.queue, "").strip():
            break
        time.sleep(0.2)
    assert policies[mine.queue].strip() == "cairn-dead-letter-at-least-once"


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
    return p.TaskReady(task_id=task_id, attempt=1, builder="b1", source="zlib", version="1.3",
                       release=4, arch=ARCH, repository="recipes",
                       repository_url="file:///srv/recipes", commit=COMMIT,
                       recipe_path="z/zlib")


async def test_every_service_works_with_its_own_account(imported: Imported) -> None:
    """The real buses, each with its own credentials: every service declares its topology
    over the imported one (same arguments, or the broker would refuse), a builder reports
    itself, a task goes summit -> builder (claim) -> summit (admission) -> builder (report)
    -> summit -> vessel (accepted), a cancellation reaches the builder's queue, and an
    assignment the builder rejects lands in its own dead-letter queue."""
    buses = {a: AmqpBus(imported.url(a), name=f"test-{a}") for a in ACCOUNTS}
    inboxes = {name: Inbox() for name in ("summit", "vessel", "journal", "builder")}
    builder, summit = buses["avalanche"], buses["summit"]
    mine = topology.builder("b1")

    async def build(event: Event[Any]) -> None:
        await inboxes["builder"].add(event)
        data = event.data
        if isinstance(data, p.TaskReady):
            if data.task_id == 99:
                raise RejectEvent("this recipe kills builders")
            await builder.publish(new_event(
                p.BuildStarted(task_id=data.task_id, builder="b1", arch=ARCH, attempt=1),
                source="avalanche", causation=event))
        elif isinstance(data, p.BuildAdmitted):
            await builder.publish(new_event(p.BuildDone(
                task_id=data.task_id, attempt=1, builder="b1", source="zlib", version="1.3",
                release=4, build_release=1, arch=ARCH, outcome=p.Outcome.SUCCESS),
                source="avalanche", causation=event))

    async def decide(event: Event[Any]) -> None:
        await inboxes["summit"].add(event)
        data = event.data
        if isinstance(data, p.BuildStarted):
            await summit.publish(new_event(p.BuildAdmitted(
                task_id=data.task_id, attempt=1, builder="b1", arch=ARCH),
                source="summit", causation=event))
        elif isinstance(data, p.BuildDone):
            await summit.publish(new_event(p.BuildAccepted(
                task_id=data.task_id, attempt=1, packages=["zlib"], build=data),
                source="summit", causation=event))

    for bus in buses.values():
        await bus.connect()
    try:
        await summit.subscribe(topology.SUMMIT, decide)
        await buses["vessel"].subscribe(topology.VESSEL, inboxes["vessel"].add)
        await buses["journal"].subscribe(topology.JOURNAL, inboxes["journal"].add)
        await builder.subscribe(mine, build)
        await builder.publish(new_event(p.BuilderSeen(
            builder="b1", arch=ARCH, state=p.BuilderState.ONLINE, boot="x", slots=1,
            interval_s=10.0), source="avalanche"))

        await summit.publish(new_event(_task_ready(7), source="summit"))
        await inboxes["summit"].wait_for(["builder-seen", "build-started", "build-done"])
        await inboxes["vessel"].wait_for(["build-accepted"])
        await summit.publish(new_event(p.TaskCancelled(task_id=7, builder="b1", arch=ARCH),
                                       source="summit"))
        await inboxes["builder"].wait_for(["task-ready", "build-admitted", "task-cancelled"])
        await summit.publish(new_event(_task_ready(99), source="summit"))
        for _ in range(100):
            dead = await buses["operator"].dead_letters(mine.queue)
            if dead:
                break
            await asyncio.sleep(0.1)
        await inboxes["journal"].wait_for(["builder-seen", "task-ready", "build-started",
                                           "build-admitted", "build-done", "build-accepted",
                                           "task-cancelled", "task-ready"])
    finally:
        await asyncio.gather(*(bus.close() for bus in buses.values()))
    assert len(dead) == 1 and "kills builders" in dead[0].reason
    assert {e.source for e in inboxes["summit"].events} == {"avalanche"}


async def test_builder_cannot_smuggle_events_onto_its_own_routing_key(imported: Imported) -> None:
    """The builder's account may publish ``build-done.*`` but not what only vessel or summit
    may. It sends a ``package-published`` (only vessel may), a ``commit-seen`` and a
    ``build-accepted`` (only summit may) on a ``build-done.x86_64`` key; the broker lets them
    through, and summit and the journal, each with its own account, dead-letter them
    unhandled, naming the key. Vessel's queue takes no ``build-done`` at all: nothing a
    builder sends reaches it."""
    genuine = p.BuildDone(task_id=7, attempt=1, builder="b1", source="zlib", version="1.3",
                          release=4, build_release=1, arch=ARCH, outcome=p.Outcome.SUCCESS)
    forged = [
        new_event(p.PackagePublished(
            task_id=7, source="zlib", release=4, build_release=1, arch=ARCH, channel="volatile",
            generation=3, packages=[p.PublishedPackage(name="zlib", version="1.3", release=4,
                                                       build_release=1, sha256="d" * 64)]),
            source="avalanche"),
        new_event(p.CommitSeen(repository="recipes", url="https://git.example/recipes",
                               branch="main", new_commit=COMMIT, old_commit="a" * 40),
                  source="avalanche"),
        new_event(p.BuildAccepted(task_id=7, attempt=1, packages=["zlib"], build=genuine),
                  source="avalanche"),
    ]
    roles = {"summit": topology.SUMMIT, "journal": topology.JOURNAL}
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
        await buses["avalanche"].publish(new_event(genuine, source="avalanche"))
        for inbox in inboxes.values():
            await inbox.wait_seen("build-done")
        vessel_got = (await buses["operator"].queue_depth(topology.VESSEL.queue),
                      await buses["operator"].dead_letters(topology.VESSEL.queue))
    finally:
        for subscription in roles.values():
            await buses["operator"].dead_letters(subscription.queue, remove=True)
        await asyncio.gather(*(bus.close() for bus in buses.values()))
    for account, found in dead_letters.items():
        assert sorted(decode_event(d.body).type for d in found) == \
            ["build-accepted", "commit-seen", "package-published"], account
        for letter in found:
            event = decode_event(letter.body)
            assert letter.routing_key == f"build-done.{ARCH}"
            assert letter.reason == (f"routing key 'build-done.{ARCH}' does not match the "
                                     f"event's type and subject ({event.routing_key!r})")
    assert {a: [e.type for e in inbox.events] for a, inbox in inboxes.items()} == \
        {a: ["build-done"] for a in roles}
    assert vessel_got == (0, [])
