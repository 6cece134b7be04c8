"""A short seeded chaos round (``bench/chaos.py``): services killed with ``kill -9`` and the
broker restarted at random while commits arrive; afterwards every invariant holds. Set
``CAIRN_CHAOS_SEED`` to replay another seed; ``python bench/chaos.py`` runs longer rounds."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bench.chaos import Plan, chaos_round, make_repo
from tests.e2e.farm import ProcessFarm
from tests.support.mosquitto import MosquittoBroker
from tests.support.rabbitmq import RabbitNode

pytestmark = [pytest.mark.rabbitmq, pytest.mark.mqtt, pytest.mark.slow,
              pytest.mark.timeout(420)]

PLAN = Plan(seed=int(os.environ.get("CAIRN_CHAOS_SEED", "1729")), duration_s=45.0,
            builders=2, recipes=4)


@pytest.fixture
async def farm(tmp_path: Path, private_rabbit: RabbitNode,
               private_mosquitto: MosquittoBroker) -> AsyncIterator[tuple[ProcessFarm, str]]:
    vhost = f"chaos-{uuid.uuid4().hex[:8]}"
    private_rabbit.add_vhost(vhost)
    running = ProcessFarm(private_rabbit.url(vhost), make_repo(tmp_path / "recipes", PLAN),
                          tmp_path / "state", mqtt_url=private_mosquitto.url)
    running.start_all(builders=PLAN.builders)
    try:
        yield running, vhost
    finally:
        running.stop_all()


async def test_a_seeded_chaos_round_keeps_every_invariant(
        farm: tuple[ProcessFarm, str], private_rabbit: RabbitNode) -> None:
    running, vhost = farm
    report = await chaos_round(running, private_rabbit, vhost, PLAN)
    story = "\n".join([*report.lines(), *report.actions])
    assert report.commits and sum(report.kills.values()), story
    assert not report.broken, f"{story}\n{running.logs()}"
