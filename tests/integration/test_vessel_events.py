"""Vessel's consumer on a real RabbitMQ: an event that is not a build is dead-lettered at once.

Regression: a ``package-published`` event arriving on vessel's queue was retried four times
with an ``AttributeError`` before it was dead-lettered. The bus already refuses an event
whose routing key is not its own; this is the case where the key is right but the queue is
bound to more than it should be (a hand-edited broker definition).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aio_pika

from daemon.runtime import Health
from daemon.runtime.config import BusSection, StateSection
from daemon.vessel.daemon import VesselDaemon, VesselDaemonConfig, VesselSection
from events import inbox
from events import payloads as p
from events.bus import DeadLetter
from events.envelope import new_event
from events.names import EVENTS_EXCHANGE, HEADER_ATTEMPTS
from events.topology import VESSEL


async def dead_letters(daemon: VesselDaemon, count: int) -> list[DeadLetter]:
    assert daemon.service is not None
    for _ in range(200):  # up to ~10 s
        found = await daemon.service.bus.dead_letters(VESSEL.queue)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {count} dead letters on {VESSEL.queue} after 10 s")


async def test_an_event_of_another_type_is_dead_lettered_at_once(
        tmp_path: Path, private_rabbitmq_url: str) -> None:
    config = VesselDaemonConfig(bus=BusSection(url=private_rabbitmq_url),
                                state=StateSection(dir=str(tmp_path)),
                                vessel=VesselSection(listen_port=0))
    daemon = VesselDaemon(config, Health("vessel"))
    await daemon.start()
    try:
        forged = new_event(p.PackagePublished(
            task_id=7, source="evil", release=1, build_release=1, arch="x86_64",
            channel="volatile", generation=3, packages=[]), source="evil-builder")
        connection = await aio_pika.connect(private_rabbitmq_url)
        async with connection, connection.channel() as channel:
            queue = await channel.declare_queue(VESSEL.queue, passive=True)
            await queue.bind(EVENTS_EXCHANGE, routing_key="package-published.#")
        assert daemon.service is not None
        await daemon.service.bus.publish(forged)
        (dead,) = await dead_letters(daemon, 1)
        assert "vessel publishes only what summit accepted" in dead.reason
        assert f"got a package-published v1 event ({forged.id})" in dead.reason
        assert dead.headers[HEADER_ATTEMPTS] == 1

        # The consumer goes on: the next event is handled (an accepted build whose artefact
        # cannot be fetched is refused and reported, not retried forever).
        failed = new_event(p.BuildAccepted(task_id=8, attempt=1, packages=["hello"],
                                           build=p.BuildDone(
            task_id=8, attempt=1, builder="b1", source="hello", version="1", release=1,
            build_release=1, arch="x86_64", outcome=p.Outcome.SUCCESS, channel="volatile",
            artefacts=[p.Artefact(name="hello", filename="hello-1-1-1-x86_64.tar.zst",
                                  url="http://127.0.0.1:9/gone", sha256="0" * 64, size=1)])),
                           source="summit")
        await daemon.service.bus.publish(failed)
        for _ in range(200):
            if await inbox.seen(daemon.service.db, "vessel", failed.id):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("vessel did not handle the build after the dead letter")
    finally:
        await daemon.stop(5.0)
