"""RabbitMQ definitions (vhost, exchanges, queues, bindings, policy, users, permissions),
computed from :mod:`events.topology` and the table of who publishes what.

Why each permission is what it is (RabbitMQ 3.10 access control, AMQP 0-9-1):

* every service's :class:`~events.amqp.AmqpBus` declares both exchanges and its own queues
  at start-up (non-passive), which needs *configure* on them; binding a queue needs *write*
  on the queue and *read* on the exchange; consuming needs *read* on the queue; publishing
  needs *write* on the exchange. A consumer dead-letters by publishing to ``cairn.dead``
  itself, so every consumer has *write* there.
* *topic permissions* on ``cairn.events`` (a topic exchange) are checked against the routing
  key of every publish (``write``) and the binding key of every ``queue.bind`` (``read``).
  ``write`` lists exactly the event types a service publishes; ``read`` lists exactly the
  binding keys it declares, so an account cannot bind a private queue to somebody else's
  events either.
* the queue regexes name exact queues; only builders' own queues (one per builder,
  ``cairn.builder.<builder>``, declared by the builder when it starts) and the operator's
  ``cairn.tail.*`` are prefixes.

What permissions cannot say: configure also allows *deleting* the exchanges and one's own
queues, ``cairn.dead`` is a direct exchange (no topic permissions), so an account may put a
message into any dead-letter queue, and builders share one account, so a builder may bind
its queue to another builder's assignments (it cannot build them: summit admits a claim
only from the builder it assigned the task to). All three are documented in
``deploy/README.md``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from events import topology
from events.amqp import DEAD_LETTER_QUEUE_ARGUMENTS, queue_arguments
from events.bus import Subscription
from events.errors import CairnError
from events.names import (
    DEAD_LETTER_EXCHANGE,
    DEAD_LETTER_SUFFIX,
    EVENTS_EXCHANGE,
    EventType,
)

DEFAULT_VHOST = "cairn"
HASHING_ALGORITHM = "rabbit_password_hashing_sha256"
#: ``cairn events tail`` declares ``cairn.tail.<random>`` (daemon/commands/events.py).
TAIL_QUEUE_PREFIX = "cairn.tail."
#: Matches no routing key that an event can have (they are never empty).
NOTHING = "^$"
_WORD = "[^.]+"
#: Stands for one instance's name (a builder's) in a template subscription.
INSTANCE = "INSTANCE"
_REGEX_SPECIALS = set("\\.^$*+?()[]{}|")


class DeployError(CairnError):
    """A deployment artefact cannot be generated as asked (bad arch, unknown user, ...)."""


@dataclass(frozen=True)
class Account:
    """One RabbitMQ user: what it publishes, declares and consumes."""

    user: str
    #: Event types it publishes on ``cairn.events`` (topic write), any subject.
    publishes: tuple[EventType, ...] = ()
    #: Durable queues it declares and binds at start-up (with their dead-letter queues).
    declares: tuple[Subscription, ...] = ()
    #: Names of the durable queues it consumes (a subset of what it declares).
    consumes: tuple[str, ...] = ()
    #: Exclusive, auto-delete queues it creates under a prefix, with their bindings.
    private_prefix: str = ""
    private_bindings: tuple[str, ...] = ()
    #: A durable queue each instance declares and consumes for itself (a builder's own
    #: queue), as a template whose name and bindings say ``INSTANCE`` for the instance.
    instance: Subscription | None = None
    #: Operator extras: publish any event (replay), read every dead-letter queue.
    publishes_anything: bool = False
    reads_dead_letters: bool = False


@dataclass(frozen=True)
class Grant:
    """The five regexes of one account (vhost permissions and topic permissions)."""

    configure: str
    write: str
    read: str
    topic_write: str
    topic_read: str


def accounts() -> tuple[Account, ...]:
    """Every account; queue names, bindings and limits come from :mod:`events.topology`."""
    return (
        Account(
            user="summit",
            publishes=(EventType.COMMIT_SEEN, EventType.TASK_READY, EventType.BUILD_ADMITTED,
                       EventType.BUILD_ACCEPTED, EventType.TASK_CANCELLED),
            # Vessel's queue too: it must exist before summit accepts a build for it.
            declares=(topology.SUMMIT, topology.VESSEL),
            consumes=(topology.SUMMIT.queue,),
        ),
        Account(
            user="avalanche",
            publishes=(EventType.BUILDER_SEEN, EventType.BUILD_STARTED, EventType.BUILD_DONE),
            instance=topology.builder(INSTANCE),
        ),
        Account(
            user="vessel",
            publishes=(EventType.PACKAGE_PUBLISHED, EventType.PUBLISH_FAILED),
            declares=(topology.VESSEL,),
            consumes=(topology.VESSEL.queue,),
        ),
        Account(
            user="journal",
            declares=(topology.JOURNAL,),
            consumes=(topology.JOURNAL.queue,),
        ),
        Account(
            user="operator",
            private_prefix=TAIL_QUEUE_PREFIX,
            private_bindings=(),
            publishes_anything=True,
            reads_dead_letters=True,
        ),
    )


def grant(account: Account) -> Grant:
    """The least permissions that let ``account`` do its work with the cairn code."""
    declared = _declared_queues(account.declares)
    private = [_escape(account.private_prefix) + _WORD] if account.private_prefix else []
    instance = [_instance(q) for q in _declared_queues((account.instance,))] \
        if account.instance else []
    consumers = [s for s in account.declares if s.queue in account.consumes]
    if account.instance is not None:
        consumers.append(account.instance)
    dead_letters_out = any(not s.terminal for s in consumers)
    binds_events = any(s.bindings for s in account.declares) or bool(private) or \
        bool(instance)
    binds_dead = any(not s.transient for s in account.declares) or bool(instance)
    exchanges = [EVENTS_EXCHANGE, DEAD_LETTER_EXCHANGE]
    write = [*declared]
    if account.publishes or account.publishes_anything:
        write.append(EVENTS_EXCHANGE)
    if dead_letters_out:
        write.append(DEAD_LETTER_EXCHANGE)
    read = list(account.consumes)
    read += [EVENTS_EXCHANGE] if binds_events else []
    read += [DEAD_LETTER_EXCHANGE] if binds_dead else []
    dead_letters_in = r"cairn\..+" + _escape(DEAD_LETTER_SUFFIX)
    dead_pattern = [dead_letters_in] if account.reads_dead_letters else []
    return Grant(
        configure=_alternatives([*exchanges, *declared], [*private, *instance]),
        write=_alternatives(write, [*private, *instance]),
        read=_alternatives(read, [*private, *instance[:1], *dead_pattern]),
        topic_write=_topic_write(account),
        topic_read=_topic_read(account),
    )


def _declared_queues(subscriptions: Iterable[Subscription]) -> list[str]:
    names: list[str] = []
    for s in subscriptions:
        names.append(s.queue)
        if not s.terminal:
            names.append(s.dead_letter_queue)
    return names


def _topic_write(account: Account) -> str:
    if account.publishes_anything:
        return f"^{_WORD}\\.{_WORD}$"
    if not account.publishes:
        return NOTHING
    types = "|".join(sorted(_escape(t.value) for t in account.publishes))
    return f"^({types})\\.{_WORD}$"


def _topic_read(account: Account) -> str:
    if account.private_prefix and not account.private_bindings:
        return ".*"  # the operator's tail binds whatever it is asked to watch
    keys = {b for s in account.declares for b in s.bindings} | set(account.private_bindings)
    patterns = {_instance(b) for b in account.instance.bindings} if account.instance else set()
    return _alternatives(keys, patterns) if keys or patterns else NOTHING


def _instance(literal: str) -> str:
    """A template name or binding as a regex: ``INSTANCE`` matches one instance's name."""
    return _escape(literal).replace(INSTANCE, _WORD)


def _escape(text: str) -> str:
    """Quote a literal for Erlang's ``re`` (PCRE): only the metacharacters, for legibility."""
    return "".join("\\" + c if c in _REGEX_SPECIALS else c for c in text)


def _alternatives(literals: Iterable[str], patterns: Iterable[str]) -> str:
    """``^(a|b|c)$`` over escaped literals and ready-made patterns, sorted, no duplicates."""
    parts = sorted({_escape(name) for name in literals} | set(patterns))
    return f"^({'|'.join(parts)})$" if parts else NOTHING


def password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's ``rabbit_password_hashing_sha256``: base64(salt + sha256(salt + password))."""
    salt = os.urandom(4) if salt is None else salt
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def build_definitions(
    *,
    vhost: str = DEFAULT_VHOST,
    user_prefix: str = "",
    password_hashes: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The definitions document for ``rabbitmqctl import_definitions``.

    Users get the hash from ``password_hashes`` (keyed by the unprefixed name) or an empty
    one: an account with no password cannot log in until ``rabbitmqctl change_password``.
    """
    hashes = dict(password_hashes or {})
    everyone = accounts()
    unknown = set(hashes) - {a.user for a in everyone}
    if unknown:
        raise DeployError(f"no such account: {', '.join(sorted(unknown))} "
                          f"(accounts: {', '.join(a.user for a in everyone)})")
    return {
        "users": [_user(user_prefix + a.user, hashes.get(a.user, "")) for a in everyone],
        "vhosts": [{"name": vhost}],
        "permissions": [_permission(vhost, user_prefix + a.user, grant(a)) for a in everyone],
        "topic_permissions": [_topic_permission(vhost, user_prefix + a.user, grant(a))
                              for a in everyone],
        "parameters": [],
        "global_parameters": [],
        "policies": [_dead_letter_policy(vhost)],
        "exchanges": [
            _exchange(vhost, EVENTS_EXCHANGE, "topic"),
            _exchange(vhost, DEAD_LETTER_EXCHANGE, "direct"),
        ],
        "queues": _queues(vhost),
        "bindings": _bindings(vhost),
    }


def consuming_queues() -> tuple[Subscription, ...]:
    """Every durable subscription whose queue exists before any service starts (builders'
    own queues are declared by each builder)."""
    return (topology.SUMMIT, topology.VESSEL, topology.JOURNAL)


def _queues(vhost: str) -> list[dict[str, Any]]:
    queues: list[dict[str, Any]] = []
    for s in consuming_queues():
        queues.append(_queue(vhost, s.queue, queue_arguments(s)))
        queues.append(_queue(vhost, s.dead_letter_queue, DEAD_LETTER_QUEUE_ARGUMENTS))
    return sorted(queues, key=lambda q: str(q["name"]))


def _bindings(vhost: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for s in consuming_queues():
        found += [_binding(vhost, EVENTS_EXCHANGE, s.queue, key) for key in s.bindings]
        found.append(_binding(vhost, DEAD_LETTER_EXCHANGE, s.dead_letter_queue,
                              s.dead_letter_queue))
    return sorted(found, key=lambda b: (str(b["source"]), str(b["destination"]),
                                        str(b["routing_key"])))


def _dead_letter_policy(vhost: str) -> dict[str, Any]:
    """At-least-once dead-lettering for the quorum queues (RabbitMQ >= 3.10).

    By default a quorum queue dead-letters at most once: a message that hits the delivery
    limit while its dead-letter queue is unavailable is dropped. ``at-least-once`` keeps it
    in the source queue until the dead-letter queue has confirmed it (and needs
    ``overflow: reject-publish``, which only matters once a length limit is set). The queue
    arguments the code declares stay the only source of exchange, routing key and limit.
    """
    names = [s.queue for s in consuming_queues()]
    return {
        "vhost": vhost,
        "name": "cairn-dead-letter-at-least-once",
        "pattern": _alternatives(names, [_instance(topology.builder(INSTANCE).queue)]),
        "apply-to": "queues",
        "priority": 0,
        "definition": {"dead-letter-strategy": "at-least-once", "overflow": "reject-publish"},
    }


def _user(name: str, password_hash_: str) -> dict[str, Any]:
    return {"name": name, "password_hash": password_hash_,
            "hashing_algorithm": HASHING_ALGORITHM, "tags": []}


def _permission(vhost: str, user: str, g: Grant) -> dict[str, Any]:
    return {"user": user, "vhost": vhost, "configure": g.configure, "write": g.write,
            "read": g.read}


def _topic_permission(vhost: str, user: str, g: Grant) -> dict[str, Any]:
    return {"user": user, "vhost": vhost, "exchange": EVENTS_EXCHANGE,
            "write": g.topic_write, "read": g.topic_read}


def _exchange(vhost: str, name: str, kind: str) -> dict[str, Any]:
    return {"name": name, "vhost": vhost, "type": kind, "durable": True,
            "auto_delete": False, "internal": False, "arguments": {}}


def _queue(vhost: str, name: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
    return {"name": name, "vhost": vhost, "durable": True, "auto_delete": False,
            "arguments": dict(arguments)}


def _binding(vhost: str, source: str, queue: str, key: str) -> dict[str, Any]:
    return {"source": source, "vhost": vhost, "destination": queue,
            "destination_type": "queue", "routing_key": key, "arguments": {}}


def render(definitions: Mapping[str, Any]) -> str:
    """Stable text (sorted keys, two-space indent, final newline) so diffs stay readable."""
    return json.dumps(definitions, indent=2, sort_keys=True) + "\n"
