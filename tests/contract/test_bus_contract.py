"""The bus contract (events/bus.py), run against the embedded broker and against RabbitMQ.

Every test asserts outcomes — which events arrived where, how often, with which dead-letter
reason — never how long something took.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
from typing import Any

import msgspec
import pytest

from events.bus import Bus, BusObserver, Subscription
from events.envelope import Event, decode_event, encode_event
from events.errors import BusError, RejectEvent, TransientError, UnroutableEvent
from events.names import HEADER_ATTEMPTS, binding
from events.payloads import TaskCancelled, TaskReady
from tests.contract.support import (
    Recorder,
    Transport,
    commit_seen,
    eventually,
    hang,
    package_published,
    subject,
    task_cancelled,
    task_ready,
)


def fast(subscription: Subscription) -> Subscription:
    """The same subscription with quick retries (the back-off is not what is tested)."""
    return dataclasses.replace(subscription, retry_base_delay=0.01, retry_max_delay=0.05)


async def _depth(bus: Bus, queue: str, expected: int) -> int:
    return int(await eventually(lambda: bus.queue_depth(queue), expected))


async def _dead(bus: Bus, queue: str, count: int) -> list[Any]:
    async def probe() -> int:
        return len(await bus.dead_letters(queue))

    await eventually(probe, count)
    return await bus.dead_letters(queue)


# --- publish -------------------------------------------------------------------------------


async def test_publish_reaches_every_bound_queue(bus_factory: Transport) -> None:
    bus = await bus_factory.open()
    s = subject()
    patterns = {
        "exact": f"task-ready.{s}",
        "star": f"*.{s}",
        "hash": f"#.{s}",
        "type-hash": "task-ready.#",
        "other-type": f"build-done.{s}",
        "other-subject": f"task-ready.{subject()}",
    }
    queues = {label: bus_factory.queue(label) for label in patterns}
    for label, pattern in patterns.items():
        await bus.declare(Subscription(queues[label], (pattern,)))

    await bus.publish(task_ready(s))
    await bus.publish(task_cancelled(s))

    expected = {
        "exact": 1,
        "star": 2,
        "hash": 2,
        "type-hash": 1,
        "other-type": 0,
        "other-subject": 0,
    }
    depths = {label: await _depth(bus, queues[label], want) for label, want in expected.items()}
    assert depths == expected


async def test_consumer_gets_only_the_subjects_it_is_bound_to(bus_factory: Transport) -> None:
    bus = await bus_factory.open()
    mine, theirs = subject(), subject()
    elsewhere = bus_factory.queue("elsewhere")
    await bus.declare(Subscription(elsewhere, (binding("task-ready", theirs),)))
    recorder = Recorder()
    await bus.subscribe(
        Subscription(bus_factory.queue("filtered"), (binding("task-ready", mine),)), recorder
    )

    wanted = [task_ready(mine, task_id=i) for i in (1, 2)]
    await bus.publish(task_ready(theirs, task_id=3))
    for event in wanted:
        await bus.publish(event)
    await bus.publish(task_ready(theirs, task_id=4))

    await recorder.wait_handled(2)
    assert await _depth(bus, elsewhere, 2) == 2
    assert sorted(recorder.ids) == sorted(e.id for e in wanted)
    assert {e.subject for e in recorder.events} == {mine}


async def test_unroutable_publish_raises_and_the_bus_still_works(bus_factory: Transport) -> None:
    bus = await bus_factory.open()
    s = subject()
    with pytest.raises(UnroutableEvent, match="bound to no queue"):
        await bus.publish(task_ready(s))
    queue = bus_factory.queue("after-unroutable")
    await bus.declare(Subscription(queue, (binding("task-ready", s),)))
    await bus.publish(task_ready(s))
    assert await _depth(bus, queue, 1) == 1


async def test_closed_or_unconnected_bus_refuses_to_publish(bus_factory: Transport) -> None:
    bus = await bus_factory.open()
    s = subject()
    await bus.declare(Subscription(bus_factory.queue("closed"), (binding("task-ready", s),)))
    await bus.close()
    with pytest.raises(BusError, match="not connected"):
        await bus.publish(task_ready(s))
    never = bus_factory._new_bus(publish_timeout=1.0)
    with pytest.raises(BusError, match="not connected"):
        await never.publish(task_ready(s))


# --- consume -------------------------------------------------------------------------------


async def test_events_arrive_validated_typed_and_intact(bus_factory: Transport) -> None:
    publisher, consumer = await bus_factory.open(), await bus_factory.open()
    s = subject()
    recorder = Recorder()
    await consumer.subscribe(Subscription(bus_factory.queue("typed"), (f"*.{s}",)), recorder)

    cause = task_ready(s, task_id=7)
    effect = task_ready(s, task_id=8, causation=cause)
    await publisher.publish(cause)
    await publisher.publish(effect)

    got = {e.id: e for e in await recorder.wait_handled(2)}
    assert got == {cause.id: cause, effect.id: effect}
    assert isinstance(got[effect.id].data, TaskReady)
    assert got[effect.id].causationid == cause.id
    assert got[effect.id].correlationid == cause.correlationid == cause.id
    assert got[cause.id].causationid is None


async def test_prefetch_limits_concurrent_handlers(bus_factory: Transport) -> None:
    bus = await bus_factory.open()
    s = subject()
    gate = asyncio.Event()
    active = 0
    peak = 0

    async def slow(event: Event[Any]) -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await gate.wait()
        active -= 1

    recorder = Recorder(slow)
    queue = bus_factory.queue("prefetch")
    await bus.subscribe(Subscription(queue, (binding("task-ready", s),), prefetch=2), recorder)
    for i in range(8):
        await bus.publish(task_ready(s, task_id=i + 1))

    await recorder.wait_attempts(2)
    # The other six wait in the broker, not in the consumer.
    assert await _depth(bus, queue, 6) == 6
    await asyncio.sleep(0.2)
    assert active == 2
    gate.set()
    await recorder.wait_handled(8)
    assert peak == 2


async def test_competing_consumers_share_a_work_queue(bus_factory: Transport) -> None:
    publisher = await bus_factory.open()
    s = subject()
    queue = bus_factory.queue("work")
    work = Subscription(queue, (binding("task-ready", s),), prefetch=1, work_queue=True)
    handled: collections.Counter[str] = collections.Counter()
    by_worker: dict[int, list[str]] = collections.defaultdict(list)
    done = asyncio.Event()
    total = 30

    def worker(index: int) -> Recorder:
        async def build(event: Event[Any]) -> None:
            await asyncio.sleep(0.01)
            handled[event.id] += 1
            by_worker[index].append(event.id)
            if sum(handled.values()) >= total:
                done.set()

        return Recorder(build)

    for index in range(3):
        bus = await bus_factory.open()
        await bus.subscribe(work, worker(index))
    published = [task_ready(s, task_id=i + 1) for i in range(total)]
    for event in published:
        await publisher.publish(event)

    await asyncio.wait_for(done.wait(), 30)
    assert set(handled) == {e.id for e in published}
    assert set(handled.values()) == {1}
    assert sorted(by_worker) == [0, 1, 2] and all(by_worker[i] for i in range(3))


# --- retries and dead letters --------------------------------------------------------------


@pytest.mark.parametrize("error", [TransientError("broker busy"), OSError("network down")])
async def test_failing_handler_is_retried_then_succeeds(
    bus_factory: Transport, error: Exception
) -> None:
    bus = await bus_factory.open()
    s = subject()

    async def flaky(event: Event[Any]) -> None:
        if recorder.attempts[event.id] < 3:
            raise error

    recorder = Recorder(flaky)
    queue = bus_factory.queue("retry")
    retrying = Subscription(queue, (binding("task-ready", s),), max_attempts=4)
    await bus.subscribe(fast(retrying), recorder)
    event = task_ready(s)
    await bus.publish(event)

    await recorder.wait_handled(1)
    assert recorder.ids == [event.id]
    assert recorder.attempts == {event.id: 3}
    assert await bus.dead_letters(queue) == []
    assert await _depth(bus, queue, 0) == 0


async def test_exhausted_retries_dead_letter_with_reason_and_routing_key(
    bus_factory: Transport,
) -> None:
    bus = await bus_factory.open()
    s = subject()

    async def broken(event: Event[Any]) -> None:
        if event.data.task_id == 1:
            raise ValueError("recipe server said 500")

    recorder = Recorder(broken)
    queue = bus_factory.queue("exhausted")
    retrying = Subscription(queue, (binding("task-ready", s),), max_attempts=3)
    await bus.subscribe(fast(retrying), recorder)
    doomed, fine = task_ready(s, task_id=1), task_ready(s, task_id=2)
    await bus.publish(doomed)
    await bus.publish(fine)

    [dead] = await _dead(bus, queue, 1)
    assert recorder.attempts[doomed.id] == 3
    assert "failed 3 times" in dead.reason and "ValueError: recipe server said 500" in dead.reason
    assert dead.routing_key == doomed.routing_key == f"task-ready.{s}"
    assert dead.queue == queue
    assert int(dead.headers[HEADER_ATTEMPTS]) == 3
    assert decode_event(dead.body) == doomed
    # The consumer kept going: the next event was handled.
    await recorder.wait_handled(1)
    assert recorder.ids == [fine.id]


async def test_reject_event_dead_letters_at_once(bus_factory: Transport) -> None:
    bus = await bus_factory.open()
    s = subject()

    async def refuse(event: Event[Any]) -> None:
        raise RejectEvent("task 1 names an unknown repository")

    recorder = Recorder(refuse)
    queue = bus_factory.queue("reject")
    retrying = Subscription(queue, (binding("task-cancelled", s),), max_attempts=5)
    await bus.subscribe(fast(retrying), recorder)
    event = task_cancelled(s)
    await bus.publish(event)

    [dead] = await _dead(bus, queue, 1)
    assert recorder.attempts == {event.id: 1}
    assert dead.reason == "rejected by handler: task 1 names an unknown repository"
    assert dead.routing_key == event.routing_key
    assert decode_event(dead.body).id == event.id


def _bad_bodies(s: str) -> dict[str, tuple[bytes, str]]:
    valid = json.loads(encode_event(task_cancelled(s)))
    schema = dict(valid, data={**valid["data"], "task_id": 0})
    unknown = dict(valid, type="task-exploded")
    oversized = dict(valid, data={**valid["data"], "reason": "x" * 3000})
    return {
        "not-json": (b"not json {", "not valid JSON"),
        "schema": (json.dumps(schema).encode(), "data.task_id"),
        "unknown-type": (json.dumps(unknown).encode(), "unknown event type 'task-exploded'"),
        "oversized": (json.dumps(oversized).encode(), "exceeds the limit of 2048"),
        "empty": (b"", "not valid JSON"),
    }


@pytest.mark.parametrize("kind", ["not-json", "schema", "unknown-type", "oversized", "empty"])
async def test_bodies_that_are_not_events_are_dead_lettered(
    bus_factory: Transport, kind: str
) -> None:
    bus = await bus_factory.open()
    s = subject()
    recorder = Recorder()
    queue = bus_factory.queue(kind)
    await bus.subscribe(
        Subscription(queue, (binding("task-cancelled", s),), max_body_bytes=2048), recorder
    )
    body, reason = _bad_bodies(s)[kind]

    await bus_factory.inject(body, f"task-cancelled.{s}")
    [dead] = await _dead(bus, queue, 1)
    assert reason in dead.reason
    assert dead.body == body
    assert dead.routing_key == f"task-cancelled.{s}"
    assert dead.queue == queue

    # Nothing reached the handler, and the consumer keeps consuming.
    assert recorder.attempts == {}
    after = task_cancelled(s, task_id=2)
    await bus.publish(after)
    await recorder.wait_handled(1)
    assert recorder.ids == [after.id]
    assert isinstance(recorder.events[0].data, TaskCancelled)


async def test_dead_letters_are_kept_unless_removed(bus_factory: Transport) -> None:
    bus = await bus_factory.open()
    s = subject()
    queue = bus_factory.queue("keep")
    await bus.subscribe(Subscription(queue, (binding("task-cancelled", s),)), Recorder())
    for body in (b"one", b"two"):
        await bus_factory.inject(body, f"task-cancelled.{s}")

    assert sorted(d.body for d in await _dead(bus, queue, 2)) == [b"one", b"two"]
    assert sorted(d.body for d in await bus.dead_letters(queue, remove=True)) == [b"one", b"two"]
    assert await bus.dead_letters(queue) == []


# --- routing keys --------------------------------------------------------------------------
# A broker authorises a publisher by routing key only; the envelope inside is the publisher's
# to write. A consumer takes an event only on its own routing key.


def _forged(kind: str, s: str) -> Event[Any]:
    return {"package-published": package_published(s), "commit-seen": commit_seen(s),
            "task-ready": task_ready(subject())}[kind]


@pytest.mark.parametrize("kind", ["package-published", "commit-seen", "task-ready"])
async def test_event_on_a_routing_key_not_its_own_is_dead_lettered(
    bus_factory: Transport, kind: str
) -> None:
    """A builder may publish ``build-done.*``: a ``package-published`` or ``commit-seen``
    envelope sent on that key, or a ``task-ready`` for another arch, is not acted upon."""
    bus = await bus_factory.open()
    s = subject()
    recorder = Recorder()
    queue = bus_factory.queue(f"misrouted-{kind}")
    await bus.subscribe(Subscription(queue, (binding("build-done", s), binding("task-ready", s),
                                             binding(kind))), recorder)
    forged = _forged(kind, s)
    arrived_on = f"build-done.{s}" if kind != "task-ready" else f"task-ready.{s}"

    await bus_factory.inject(encode_event(forged), arrived_on)
    [dead] = await _dead(bus, queue, 1)
    assert dead.reason == (f"routing key {arrived_on!r} does not match the event's type and "
                           f"subject ({forged.routing_key!r})")
    assert dead.routing_key == arrived_on
    assert dead.queue == queue
    assert decode_event(dead.body) == forged

    # The same event on its own key is handled, and nothing else reached the handler.
    await bus.publish(forged)
    await recorder.wait_handled(1)
    assert recorder.ids == [forged.id]
    assert recorder.attempts == {forged.id: 1}


async def test_event_whose_subject_contradicts_its_data_is_dead_lettered(
    bus_factory: Transport,
) -> None:
    """The routing key and the envelope's subject agree, but the data names another arch:
    the subject a permission was checked on is not the one the consumer would act on."""
    bus = await bus_factory.open()
    s, other = subject(), subject()
    recorder = Recorder()
    queue = bus_factory.queue("lying-subject")
    await bus.subscribe(Subscription(queue, (binding("task-ready", s),)), recorder)
    body = json.loads(encode_event(task_ready(other)))
    body["subject"] = s

    await bus_factory.inject(json.dumps(body).encode(), f"task-ready.{s}")
    [dead] = await _dead(bus, queue, 1)
    assert dead.reason.startswith("invalid event: ")
    assert f"subject {s!r} is not the one its data gives ({other!r})" in dead.reason
    assert recorder.attempts == {}


async def test_an_event_published_with_a_lying_subject_is_dead_lettered_by_every_queue(
    bus_factory: Transport,
) -> None:
    """Built in code, not by new_event, and published through the bus: each queue it
    reaches checks it as if it came from the network (the embedded broker decodes an event
    once for all its queues, and must not let this one through)."""
    bus = await bus_factory.open()
    s, other = subject(), subject()
    lying = msgspec.structs.replace(task_ready(other), subject=s)
    first, second = Recorder(), Recorder()
    queues = bus_factory.queue("lying-a"), bus_factory.queue("lying-b")
    for queue, recorder in zip(queues, (first, second), strict=True):
        await bus.subscribe(Subscription(queue, (binding("task-ready", s),)), recorder)

    await bus.publish(lying)
    for queue in queues:
        [dead] = await _dead(bus, queue, 1)
        assert f"subject {s!r} is not the one its data gives ({other!r})" in dead.reason
    assert first.attempts == {} and second.attempts == {}


async def test_dead_letter_reader_takes_only_events_dead_lettered_from_their_own_key(
    bus_factory: Transport,
) -> None:
    """Dead letters arrive under the dead-letter queue's name; the key that counts is the
    one they were published with, kept in the dead letter (anyone may write to the
    dead-letter exchange, so it is checked like any other)."""
    bus = await bus_factory.open()
    s = subject()
    work = Subscription(bus_factory.queue("dead-keys"), (binding("task-ready", s),),
                        work_queue=True)
    await bus.declare(work)
    reader = Recorder()
    await bus.subscribe(Subscription(work.dead_letter_queue, (), dead_letter_reader=True), reader)
    forged, genuine = package_published(s), task_ready(s)

    await bus_factory.inject_dead_letter(encode_event(forged), work.queue, f"task-ready.{s}")
    await bus_factory.inject_dead_letter(encode_event(genuine), work.queue, genuine.routing_key)

    await reader.wait_handled(1)
    assert reader.ids == [genuine.id]
    assert reader.attempts == {genuine.id: 1}
    assert await _depth(bus, work.dead_letter_queue, 0) == 0


async def test_dead_letter_reader_takes_what_the_delivery_limit_dead_lettered(
    bus_factory: Transport,
) -> None:
    """The broker's own dead letters (a task that killed its consumers) carry the original
    key in the broker's form: the reader still takes them."""
    s = subject()
    work = Subscription(bus_factory.queue("limit-read"), (binding("task-ready", s),),
                        prefetch=1, work_queue=True, delivery_limit=1)
    publisher = await bus_factory.open()
    reader = Recorder()
    await publisher.declare(work)
    await publisher.subscribe(Subscription(work.dead_letter_queue, (), dead_letter_reader=True),
                              reader)
    event = task_ready(s)
    await publisher.publish(event)
    victim = await bus_factory.open()
    holder = Recorder(hang)
    await victim.subscribe(work, holder)
    await holder.wait_attempts(1)
    await victim.close(timeout=0.05)

    await reader.wait_handled(1)
    assert reader.ids == [event.id]


# --- consumers going away ------------------------------------------------------------------


@pytest.mark.parametrize("how", ["close-bus", "cancel-consumer"])
async def test_message_of_a_consumer_gone_mid_handler_is_redelivered(
    bus_factory: Transport, how: str
) -> None:
    s = subject()
    work = Subscription(
        bus_factory.queue("gone"), (binding("task-ready", s),), prefetch=1, work_queue=True
    )
    doomed_bus, survivor_bus = await bus_factory.open(), await bus_factory.open()
    started = Recorder(hang)
    doomed = await doomed_bus.subscribe(work, started)
    event = task_ready(s)
    await survivor_bus.publish(event)
    await started.wait_attempts(1)

    if how == "close-bus":
        await doomed_bus.close(timeout=0.05)
    else:
        await doomed.cancel(timeout=0.05)
    survivor = Recorder()
    await survivor_bus.subscribe(work, survivor)

    await survivor.wait_handled(1)
    assert started.attempts == {event.id: 1} and started.ids == []
    assert survivor.ids == [event.id]
    assert await survivor_bus.dead_letters(work.queue) == []


@pytest.mark.parametrize("limit", [1, 3])
async def test_delivery_limit_dead_letters_a_message_that_kills_its_consumers(
    bus_factory: Transport, limit: int
) -> None:
    s = subject()
    work = Subscription(
        bus_factory.queue("poison"),
        (binding("task-ready", s),),
        prefetch=1,
        work_queue=True,
        delivery_limit=limit,
    )
    publisher = await bus_factory.open()
    await publisher.declare(work)
    event = task_ready(s)
    await publisher.publish(event)

    deliveries = 0
    while True:
        victim = await bus_factory.open()
        holder = Recorder(hang)
        await victim.subscribe(work, holder)
        handed_out = await _handed_out_or_dead(holder, publisher, work.queue)
        # The consumer dies holding the message (its handler never returns).
        await victim.close(timeout=0.05)
        if not handed_out:
            break
        deliveries += 1
        assert deliveries <= limit, f"delivered {deliveries} times despite a limit of {limit}"

    [dead] = await _dead(publisher, work.queue, 1)
    assert deliveries == limit
    assert "delivery limit" in dead.reason or "delivery_limit" in dead.reason
    assert dead.routing_key == event.routing_key
    assert decode_event(dead.body).id == event.id
    assert await publisher.queue_depth(work.queue) == 0


async def _handed_out_or_dead(recorder: Recorder, bus: Bus, queue: str) -> bool:
    """True once the recorder got the message, False once it was dead-lettered instead."""

    async def poll() -> bool:
        while True:
            if recorder.attempts:
                return True
            if await bus.dead_letters(queue):
                return False
            await asyncio.sleep(0.05)

    return await asyncio.wait_for(poll(), 30)


async def test_close_lets_in_flight_handlers_finish_and_acknowledges_them(
    bus_factory: Transport,
) -> None:
    s = subject()
    work = Subscription(
        bus_factory.queue("drain"), (binding("task-ready", s),), prefetch=4, work_queue=True
    )
    bus, other = await bus_factory.open(), await bus_factory.open()
    gate = asyncio.Event()

    async def build(event: Event[Any]) -> None:
        await gate.wait()

    recorder = Recorder(build)
    await bus.subscribe(work, recorder)
    first = [task_ready(s, task_id=i + 1) for i in range(3)]
    for event in first:
        await other.publish(event)
    await recorder.wait_attempts(3)

    closing = asyncio.create_task(bus.close(timeout=30))
    await asyncio.sleep(0.2)
    assert not closing.done(), "close() returned while handlers were still running"
    gate.set()
    await closing
    assert sorted(recorder.ids) == sorted(e.id for e in first)

    # They were acknowledged: a new consumer gets only what is published afterwards.
    later = Recorder()
    await other.subscribe(work, later)
    marker = task_ready(s, task_id=99)
    await other.publish(marker)
    await later.wait_handled(1)
    await asyncio.sleep(0.2)
    assert later.ids == [marker.id]
    assert await _depth(other, work.queue, 0) == 0


async def test_consumer_cancel_stops_consuming(bus_factory: Transport) -> None:
    bus = await bus_factory.open()
    s = subject()
    queue = bus_factory.queue("cancelled")
    recorder = Recorder()
    consumer = await bus.subscribe(Subscription(queue, (binding("task-ready", s),)), recorder)
    await bus.publish(task_ready(s, task_id=1))
    await recorder.wait_handled(1)
    await consumer.cancel()
    await bus.publish(task_ready(s, task_id=2))
    assert await _depth(bus, queue, 1) == 1
    assert len(recorder.events) == 1


async def test_transient_queue_goes_away_with_its_consumer(bus_factory: Transport) -> None:
    bus = await bus_factory.open()
    s = subject()
    recorder = Recorder()
    tail = Subscription(bus_factory.queue("tail"), (binding("task-ready", s),), transient=True)
    consumer = await bus.subscribe(tail, recorder)
    event = task_ready(s)
    await bus.publish(event)
    assert [e.id for e in await recorder.wait_handled(1)] == [event.id]
    await consumer.cancel()
    with pytest.raises(UnroutableEvent):
        await bus.publish(task_ready(s, task_id=2))


# --- queue depth ---------------------------------------------------------------------------


async def test_queue_depth_counts_ready_messages(bus_factory: Transport) -> None:
    bus = await bus_factory.open()
    s = subject()
    queue = bus_factory.queue("depth")
    await bus.declare(Subscription(queue, (binding("task-ready", s),)))
    assert await bus.queue_depth(queue) == 0
    for i in range(3):
        await bus.publish(task_ready(s, task_id=i + 1))
    assert await _depth(bus, queue, 3) == 3
    recorder = Recorder()
    await bus.subscribe(Subscription(queue, (binding("task-ready", s),)), recorder)
    await recorder.wait_handled(3)
    assert await _depth(bus, queue, 0) == 0


async def test_queue_depth_of_an_undeclared_queue_is_a_bus_error(bus_factory: Transport) -> None:
    bus = await bus_factory.open()
    with pytest.raises(BusError):
        await bus.queue_depth(bus_factory.queue("never-declared"))
    with pytest.raises(BusError):
        await bus.dead_letters(bus_factory.queue("never-declared"))
    # The bus is still usable afterwards.
    queue = bus_factory.queue("still-usable")
    await bus.declare(Subscription(queue, ("task-ready.x",)))
    assert await bus.queue_depth(queue) == 0


async def test_dead_letter_reader_consumes_a_queues_dead_letters(bus_factory: Transport) -> None:
    bus = await bus_factory.open()
    s = subject()

    async def refuse(event: Event[Any]) -> None:
        raise RejectEvent("unknown repository")

    work = Subscription(
        bus_factory.queue("read-dead"), (binding("task-ready", s),), work_queue=True
    )
    await bus.subscribe(work, refuse)
    reader = Recorder()
    await bus.subscribe(Subscription(work.dead_letter_queue, (), dead_letter_reader=True), reader)
    event = task_ready(s)
    await bus.publish(event)

    await reader.wait_handled(1)
    assert reader.ids == [event.id]
    assert await _depth(bus, work.dead_letter_queue, 0) == 0


# --- connection state and observers --------------------------------------------------------


async def test_check_passes_while_connected_and_names_why_not_otherwise(
    bus_factory: Transport,
) -> None:
    bus = await bus_factory.open()
    await bus.check()
    await bus.close(timeout=1.0)
    with pytest.raises(BusError, match="not connected"):
        await bus.check()
    reopened = await bus_factory.open()
    await reopened.check()


class RecordingObserverDouble(BusObserver):
    """An observer that writes down what the bus told it, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def handled(self, event_type: str, queue: str) -> None:
        self.calls.append(("handled", event_type, queue))

    def retried(self, event_type: str, queue: str) -> None:
        self.calls.append(("retried", event_type, queue))

    def dead_lettered(self, event_type: str, queue: str) -> None:
        self.calls.append(("dead-lettered", event_type, queue))

    def published(self, event_type: str, seconds: float) -> None:
        assert seconds >= 0
        self.calls.append(("published", event_type))

    def publish_failed(self, event_type: str) -> None:
        self.calls.append(("publish-failed", event_type))


async def test_the_observer_hears_every_verdict_and_publish(bus_factory: Transport) -> None:
    """Observing is part of the port: metrics attach to any bus the same way, and hear the
    same things from both transports, for consumers started before they attached too."""
    bus = await bus_factory.open()
    s = subject()
    queue = bus_factory.queue("observed")
    calls: collections.Counter[str] = collections.Counter()

    async def flaky_then_fine(event: Event[Any]) -> None:
        calls[event.id] += 1
        if event.data.task_id == 2 and calls[event.id] == 1:
            raise TransientError("busy")
        if event.data.task_id == 3:
            raise RejectEvent("never")

    recorder = Recorder(flaky_then_fine)
    await bus.subscribe(fast(Subscription(queue, (binding("task-ready", s),))), recorder)
    observer = RecordingObserverDouble()
    bus.observe(observer)
    assert bus.observer is observer

    for task_id in (1, 2, 3):
        await bus.publish(task_ready(s, task_id=task_id))
    with pytest.raises(UnroutableEvent):
        await bus.publish(task_ready(subject()))
    await bus_factory.inject(b"not an event", f"task-ready.{s}")
    await recorder.wait_handled(2)
    await _dead(bus, queue, 2)

    async def settled() -> int:
        return sum(1 for c in observer.calls if c[0] in ("handled", "dead-lettered"))

    await eventually(settled, 4)
    assert collections.Counter(observer.calls) == collections.Counter({
        ("published", "task-ready"): 3,
        ("publish-failed", "task-ready"): 1,
        ("handled", "task-ready", queue): 2,
        ("retried", "task-ready", queue): 1,
        ("dead-lettered", "task-ready", queue): 1,
        ("dead-lettered", "invalid", queue): 1,
    })
