"""How good summit's estimate of the queue's finish is, on the example recipes.

A farm of separate processes (journal, vessel, summit, two builders; tests/e2e/farm.py) on
RabbitMQ (a fresh vhost of the broker at 127.0.0.1, deleted afterwards) and a Mosquitto of
its own builds the examples once — summit learns each source's duration and the time
publishing takes — then every recipe's release is bumped and committed, so all of them build
again. As soon as summit has planned and dispatched the second run, the overview's
``expected_finish`` is read; the run's actual finish is when the last task completes. Both
are printed, measured from the moment of the estimate, with the error.

    .venv/bin/python bench/eta.py [--builders 2] [--runs 1]

Acceptance (issue: ETAs): the second run's expected finish is within 50% of the actual one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.farm import ProcessFarm, commit, recipe_repo, slow_recipe
from tests.support.mosquitto import MosquittoBroker

RABBITMQ = os.environ.get("CAIRN_BENCH_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672")
#: A recipe that takes its time, so durations are not all dispatch and publish overhead.
SLOW = slow_recipe(16)


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


def bump_all(repo: Path) -> int:
    """Raise every recipe's release by one; returns how many recipes."""
    count = 0
    for stone in sorted(repo.glob("*/stone.yaml")):
        text = stone.read_text()
        text = re.sub(r"^release(\s*):\s*(\d+)",
                      lambda m: f"release{m.group(1)}: {int(m.group(2)) + 1}", text,
                      count=1, flags=re.M)
        stone.write_text(text)
        count += 1
    return count


async def overview(farm: ProcessFarm) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, \
            session.get(f"{farm.summit_url}/api/v1/overview") as answer:
        answer.raise_for_status()
        data: dict[str, Any] = await answer.json()
        return data


def done_with(release: int, count: int) -> Any:
    def check(tasks: list[dict[str, Any]]) -> bool:
        wanted = [t for t in tasks if t["release"] == release]
        return len(wanted) == count and all(t["state"] == "completed" for t in wanted)
    return check


async def second_run(farm: ProcessFarm, recipes: int, release: int) -> tuple[float, float]:
    """(expected seconds to finish, actual seconds), both from the moment of the estimate."""
    while True:  # until summit has planned the new releases and dispatched the first ones
        tasks = [t for t in await farm.tasks() if t["release"] == release]
        if len(tasks) == recipes and any(t["state"] != "blocked" for t in tasks):
            seen = await overview(farm)
            if seen["expected_finish"] is not None:
                break
        await asyncio.sleep(0.1)
    estimated_at = time.time()
    expected = float(seen["expected_finish"]) - estimated_at
    await farm.wait_tasks(done_with(release, recipes), timeout=600)
    # wait_tasks polls every 0.5 s: take the last completion from the tasks' own records.
    actual = await last_completion(farm, release) - estimated_at
    return expected, actual


async def last_completion(farm: ProcessFarm, release: int) -> float:
    latest = 0.0
    for task in [t for t in await farm.tasks() if t["release"] == release]:
        async with aiohttp.ClientSession() as session, session.get(
                f"{farm.summit_url}/api/v1/tasks/{task['id']}") as answer:
            detail = await answer.json()
        latest = max([latest, *(e["time"] for e in detail["timeline"]
                                if e["type"] == "completed")])
    return latest


async def bench(args: argparse.Namespace, work: Path) -> list[tuple[float, float]]:
    vhost = f"cairn-bench-eta-{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    mqtt = MosquittoBroker(work / "mosquitto").start()
    repo = recipe_repo(work / "recipes", {"slow": SLOW})
    recipes = len(list(repo.glob("*/stone.yaml")))
    farm = ProcessFarm(f"{RABBITMQ}/{vhost}", repo, work / "state", mqtt_url=mqtt.url)
    figures = []
    try:
        farm.start_all(builders=args.builders)
        started = time.time()
        await farm.wait_tasks(done_with(1, recipes), timeout=600)
        print(f"first run: {recipes} recipes in {time.time() - started:.1f} s (learning)")
        for run in range(args.runs):
            release = run + 2
            bump_all(repo)
            commit(repo, f"every recipe: release {release}")
            expected, actual = await second_run(farm, recipes, release)
            error = abs(expected - actual) / actual
            figures.append((expected, actual))
            print(f"run {run + 2}: expected finish in {expected:.1f} s, actual {actual:.1f} s "
                  f"(error {error:.0%}; acceptance: within 50%)")
    finally:
        farm.stop_all()
        mqtt.stop()
        rabbitmqctl("delete_vhost", vhost)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--builders", type=int, default=2)
    parser.add_argument("--runs", type=int, default=1, help="runs after the learning one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cairn-bench-eta-") as work:
        asyncio.run(bench(args, Path(work)))


if __name__ == "__main__":
    main()
