"""A noop mass rebuild on a three-node RabbitMQ cluster, with the node that holds the most
queue leaders (summit's queue among them: every report and claim goes through it) killed
(kill -9 of its Erlang VM) mid-run and started again: every task completes, the index lists
each package once, the journal shows each publication once.

The corpus (``../shared/corpora/serpent-recipes``) is used when present; otherwise a
generated tree of a few hundred recipes. The farm is the mass-rebuild benchmark's: vessel
seeded with every recipe published, one commit bumping them all, journal, vessel and summit
their own processes and noop builders in this one, every client given all three addresses.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import pytest

from bench.mass_farm import PrivateBroker, ProcessBench, snapshot, unfinished, warm_builders
from bench.mass_rebuild import DEFAULT_CORPUS, journal_events, settle_journal, wait_for
from bench.mass_seed import bump_all, generate_corpus, make_repo, seed_vessel
from events.names import Queue
from tests.support.index import read_index
from tests.support.rabbitmq import RabbitCluster

pytestmark = [pytest.mark.rabbitmq, pytest.mark.cluster, pytest.mark.slow,
              pytest.mark.timeout(900)]

GENERATED_RECIPES = 300


async def _until_completed(farm: ProcessBench, count: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while snapshot(farm.summit_db).states.get("completed", 0) < count:
        assert time.monotonic() < deadline, f"not {count} completed: {snapshot(farm.summit_db)}"
        await asyncio.sleep(0.2)


async def test_noop_mass_rebuild_survives_kill_9_of_the_busiest_node(
        private_rabbit_cluster: RabbitCluster, tmp_path: Path) -> None:
    cluster = private_rabbit_cluster
    corpus = DEFAULT_CORPUS if DEFAULT_CORPUS.is_dir() else \
        generate_corpus(tmp_path / "generated", GENERATED_RECIPES)
    repo = tmp_path / "recipes"
    first = await asyncio.to_thread(make_repo, corpus, repo)
    farm = ProcessBench(tmp_path / "state", repo, 4, PrivateBroker(cluster), "info")
    seeded = await seed_vessel(farm.vessel_state, repo, first)
    try:
        await farm.start()
        await wait_for(farm.summit_db, first, 120, 0.2, want_tasks=False)
        await warm_builders(farm, repo, first)
        bump = await asyncio.to_thread(bump_all, repo)
        await farm.refresh()
        await _until_completed(farm, max(seeded.recipes // 10, 1))
        leaders = await asyncio.to_thread(cluster.leaders, farm.vhost)
        assert Queue.SUMMIT in leaders
        busiest = Counter(node.nodename for node in leaders.values()).most_common(1)[0][0]
        leader = cluster.node(busiest)
        killed_at = snapshot(farm.summit_db).states
        await asyncio.to_thread(leader.kill)
        await asyncio.sleep(2)
        await asyncio.to_thread(leader.start)
        await wait_for(farm.summit_db, bump, 600, 0.5, want_tasks=True)
        await settle_journal(farm.journal_db)
    finally:
        await farm.stop()

    states = snapshot(farm.summit_db).states
    assert states == {"completed": seeded.recipes}, (
        f"killed {leader.nodename} at {killed_at}; now {states}: "
        f"{unfinished(farm.summit_db)[:10]}")
    assert killed_at.get("completed", 0) < seeded.recipes, "the kill came after the run"

    index_path = farm.vessel_state / "repo" / "volatile" / "x86_64" / "current" / "index.json"
    names = [p.name for p in read_index(index_path).packages]
    assert len(names) == len(set(names)) == seeded.packages

    events = await journal_events(farm.journal_db)
    published = Counter(getattr(e.data, "task_id", None) for e in events
                        if e.type == "package-published")
    twice = {task: n for task, n in published.items() if n > 1}
    assert twice == {}, f"published more than once: {twice}"
    assert len(published) == seeded.recipes
