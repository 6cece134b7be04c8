"""Chaos: a farm of separate processes on a private RabbitMQ node, with services killed
(``kill -9``) and the broker restarted at random while commits arrive, then the invariants
summit's decisions promise.

Usage: ``python bench/chaos.py [--seed N] [--duration S] [--builders N] [--recipes N]``.
It starts its own RabbitMQ node and Mosquitto (``tests/support``), makes a recipe
repository, runs the farm (``tests/e2e/farm.py``), and prints what it did and what it found;
the exit status is 1 if an invariant broke; the last line of stdout is one JSON object. The
same seed makes the same choices (the timing of the processes still varies).
``tests/e2e/test_chaos.py`` runs a short seeded round.

The invariants, checked once the chaos has stopped and the farm has settled:

- every published (source, release) is the task summit completed for it, each published once;
- the signed index equals the recipes at head (one release per source, the head's);
- no task stays new, ready, building or publishing while every builder is idle;
- summit's and vessel's outboxes are empty, and so is every dead-letter queue;
- ``cairn channel verify`` accepts the published repository.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from daemon.summit import schema as summit_schema
from daemon.vessel import store as vessel_store
from events import outbox
from events.sqlite import Database
from tests.e2e.farm import ProcessFarm, bump_release, commit, recipe_repo
from tests.support.mosquitto import MosquittoBroker
from tests.support.ports import free_port
from tests.support.rabbitmq import Epmd, RabbitNode, new_cookie

RECIPE = """name        : {name}
version     : 1.0.0
release     : 1
summary     : A recipe of the chaos run
license     : MPL-2.0
build       : |
    for i in $(seq 1 {steps}); do echo "{name}: step $i"; sleep 0.5; done
install     : |
    mkdir -p $installdir/usr/share/{name}
    echo {name} > $installdir/usr/share/{name}/done
"""
MOVING = frozenset({"new", "ready", "building", "publishing"})
SERVICES = ("summit", "vessel", "journal")


@dataclass(frozen=True)
class Plan:
    """What a chaos round does; the seed decides the order and the targets."""

    seed: int
    duration_s: float = 60.0
    builders: int = 2
    recipes: int = 4
    #: Seconds between two actions.
    pause_s: tuple[float, float] = (1.0, 3.0)
    #: Relative weights of the actions.
    commits: int = 5
    kills: int = 3
    broker_restarts: int = 1
    #: At most this many restarts of the broker in a round (each takes seconds).
    max_broker_restarts: int = 2

    def recipe_names(self) -> list[str]:
        return [f"chaos-{n}" for n in range(1, self.recipes + 1)]


@dataclass
class Report:
    """What a round did and what it found."""

    seed: int
    actions: list[str] = field(default_factory=list)
    commits: int = 0
    kills: Counter[str] = field(default_factory=Counter)
    broker_restarts: int = 0
    tasks: Counter[str] = field(default_factory=Counter)
    published: int = 0
    settle_s: float = 0.0
    broken: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [f"seed {self.seed}: {self.commits} commit(s), kills {dict(self.kills)}, "
                f"{self.broker_restarts} broker restart(s)",
                f"tasks {dict(self.tasks)}; {self.published} publication(s); "
                f"settled {self.settle_s:.1f} s after the chaos stopped",
                *(f"BROKEN: {b}" for b in self.broken)]


def make_repo(path: Path, plan: Plan) -> Path:
    rng = random.Random(plan.seed)
    return recipe_repo(path, {name: RECIPE.format(name=name, steps=rng.randint(1, 6))
                              for name in plan.recipe_names()}, examples=False)


class Chaos:
    """One round against a running farm whose broker is ``node`` (vhost ``vhost``)."""

    def __init__(self, farm: ProcessFarm, node: RabbitNode, vhost: str, plan: Plan) -> None:
        self.farm = farm
        self.node = node
        self.vhost = vhost
        self.plan = plan
        self.rng = random.Random(plan.seed)
        self.heads = dict.fromkeys(plan.recipe_names(), 1)
        self.report = Report(plan.seed)
        self._started = time.monotonic()

    def _note(self, what: str) -> None:
        self.report.actions.append(f"{time.monotonic() - self._started:6.1f}s {what}")

    # -- actions ---------------------------------------------------------------------------
    async def run(self) -> Report:
        """The chaos for ``duration_s``, then everything running again."""
        deadline = time.monotonic() + self.plan.duration_s
        while time.monotonic() < deadline:
            actions = ["commit", "kill"]
            weights = [self.plan.commits, self.plan.kills]
            if self.report.broker_restarts < self.plan.max_broker_restarts:
                actions.append("broker")
                weights.append(self.plan.broker_restarts)
            action = self.rng.choices(actions, weights)[0]
            self.revive()
            await getattr(self, f"_{action}")()
            await asyncio.sleep(self.rng.uniform(*self.plan.pause_s))
        self.revive()
        return self.report

    async def _commit(self) -> None:
        """Bump one recipe; sometimes twice in quick succession (the first is superseded)."""
        name = self.rng.choice(sorted(self.heads))
        for _ in range(self.rng.choice((1, 1, 2))):
            self.heads[name] += 1
            bump_release(self.farm.repo, name, self.heads[name])
            commit(self.farm.repo, f"{name}: release {self.heads[name]}")
            self.report.commits += 1
            self._note(f"commit {name} release {self.heads[name]}")
            await asyncio.sleep(self.rng.uniform(0.1, 0.6))

    async def _kill(self) -> None:
        """kill -9 one service, and start it again a moment later."""
        name = self.rng.choice([*SERVICES, *self.builders()])
        self.farm.kill(name, signal.SIGKILL)
        self.report.kills[name] += 1
        self._note(f"kill -9 {name}")
        await asyncio.sleep(self.rng.uniform(0.2, 3.0))
        self.restart(name)

    async def _broker(self) -> None:
        """Restart the broker: stopped cleanly or killed -9, then started again."""
        killed = self.rng.random() < 0.5
        self._note("broker " + ("kill -9" if killed else "stop"))
        if killed:
            await asyncio.to_thread(self.node.kill)
        else:
            await asyncio.to_thread(self.node.stop)
        await asyncio.sleep(self.rng.uniform(0.5, 3.0))
        await asyncio.to_thread(self.node.start)
        self.report.broker_restarts += 1
        self._note("broker started")

    def builders(self) -> list[str]:
        return [f"builder{n}" for n in range(1, self.plan.builders + 1)]

    def restart(self, name: str) -> None:
        if name == "summit":
            self.farm.start_summit()
        elif name == "vessel":
            self.farm.start("vessel", "vessel",
                            CAIRN_VESSEL_LISTEN_PORT=str(self.farm.vessel_port))
        elif name == "journal":
            self.farm.start("journal", "journal")
        else:
            self.farm.start_builder(name)

    def revive(self) -> None:
        """Start again whatever exited, as its supervisor would (systemd's
        ``Restart=on-failure``): a daemon that starts while the broker is away exits."""
        if not self.node.running:
            self.node.start()
        for name, process in list(self.farm.processes.items()):
            if process.poll() is not None:
                self._note(f"{name} had exited ({process.returncode}); started again")
                self.restart(name)

    # -- invariants ------------------------------------------------------------------------
    async def settle(self, timeout: float = 240.0) -> list[dict[str, Any]]:
        """Wait until every recipe's head release is completed and nothing moves."""
        began = time.monotonic()

        def settled(tasks: list[dict[str, Any]]) -> bool:
            if any(t["state"] in MOVING for t in tasks):
                return False
            done = {(t["source"], t["release"]) for t in tasks if t["state"] == "completed"}
            return all((name, release) in done for name, release in self.heads.items())
        try:
            tasks = await self.farm.wait_tasks(settled, timeout=timeout)
        except AssertionError as exc:
            self.report.broken.append(f"the farm did not settle: {str(exc)[:2000]}")
            tasks = await self.farm.tasks()
        self.report.settle_s = time.monotonic() - began
        self.report.tasks = Counter(t["state"] for t in tasks)
        return tasks

    async def check(self, tasks: list[dict[str, Any]]) -> Report:
        broken = self.report.broken
        events = self.farm.journal()
        published = [e["data"] for e in events if e["type"] == "package-published"]
        self.report.published = len(published)
        by_id = {t["id"]: t for t in tasks}
        ids = Counter(d["task_id"] for d in published)
        broken += [f"task {i} published {n} times" for i, n in ids.items() if n > 1]
        completed = Counter((t["source"], t["release"]) for t in tasks
                            if t["state"] == "completed")
        broken += [f"{s} release {r} completed by {n} tasks" for (s, r), n in completed.items()
                   if n > 1]
        for data in published:
            task = by_id.get(data["task_id"])
            if task is None or task["state"] != "completed" or (
                    task["source"], task["release"]) != (data["source"], data["release"]):
                broken.append(f"{data['source']} release {data['release']} was published by "
                              f"task {data['task_id']}, which summit has as {task}")
        index = Counter((p["source"], p["release"]) for p in self.farm.index()["packages"])
        heads = Counter(self.heads.items())
        if index != heads:
            broken.append(f"the index {dict(index)} is not the recipes at head {dict(heads)}")
        broken += [f"task {t['id']} ({t['source']} {t['release']}) stays {t['state']}"
                   for t in tasks if t["state"] in MOVING]
        broken += [f"task {t['id']} ({t['source']} {t['release']}) failed: {t['failure']}"
                   for t in tasks if t["state"] == "failed"]
        broken += await self._quiet()
        broken += self._verify()
        return self.report

    async def _quiet(self, timeout: float = 30.0) -> list[str]:
        """Empty outboxes and dead-letter queues (the outboxes may need a moment)."""
        deadline = time.monotonic() + timeout
        while True:
            found = []
            for db_name, migrations in (("summit.sqlite", summit_schema.MIGRATIONS),
                                        ("vessel.sqlite", vessel_store.MIGRATIONS)):
                for path in self.farm.state.rglob(db_name):
                    async with Database.open(path, migrations) as db:
                        pending, parked = await outbox.counts(db)
                    if pending or parked:
                        found.append(f"{path.name}: {pending} pending, {parked} parked in "
                                     "the outbox")
            listed = self.node.ctl("list_queues", "-p", self.vhost, "-q", "name",
                                   "messages").stdout
            for line in listed.splitlines():
                name, _, count = line.strip().rpartition("\t")
                if name.endswith(".dead") and count.strip() not in ("", "0"):
                    found.append(f"{name} holds {count.strip()} dead letter(s)")
            if not found or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.5)

    def _verify(self) -> list[str]:
        done = subprocess.run([sys.executable, "-m", "daemon.cli", "channel", "verify",
                               self.farm.vessel_url, "--channel", "volatile", "--arch",
                               "x86_64", "--allow-not-hermetic", "--seen-file",
                               str(self.farm.state / "chaos-seen.json")],
                              capture_output=True, text=True, check=False)
        return [] if done.returncode == 0 else [f"channel verify: {done.stdout}{done.stderr}"]


async def chaos_round(farm: ProcessFarm, node: RabbitNode, vhost: str, plan: Plan) -> Report:
    """Run a round against a started farm, settle it and check the invariants."""
    chaos = Chaos(farm, node, vhost, plan)
    await chaos.run()
    tasks = await chaos.settle()
    return await chaos.check(tasks)


async def _main(plan: Plan, workdir: Path) -> Report:
    for sub in ("epmd", "rmq", "mqtt"):
        (workdir / sub).mkdir()
    epmd = Epmd(workdir / "epmd", free_port()).start()
    node = RabbitNode(f"cairn-chaos{uuid.uuid4().hex[:4]}", workdir / "rmq", epmd, new_cookie())
    mosquitto = MosquittoBroker(workdir / "mqtt")
    farm: ProcessFarm | None = None
    try:
        node.start()
        mosquitto.start()
        vhost = "chaos"
        node.add_vhost(vhost)
        repo = make_repo(workdir / "recipes", plan)
        farm = ProcessFarm(node.url(vhost), repo, workdir / "state", mqtt_url=mosquitto.url)
        farm.start_all(builders=plan.builders)
        report = await chaos_round(farm, node, vhost, plan)
        for line in report.actions:
            print(line, flush=True)
        return report
    finally:
        if farm is not None:
            farm.stop_all()
        mosquitto.stop()
        node.stop()
        epmd.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=random.randrange(10**6))
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of chaos")
    parser.add_argument("--builders", type=int, default=2)
    parser.add_argument("--recipes", type=int, default=6)
    parser.add_argument("--keep", type=Path, default=None,
                        help="run in this (new) directory and keep it: logs, databases")
    args = parser.parse_args()
    plan = Plan(seed=args.seed, duration_s=args.duration, builders=args.builders,
                recipes=args.recipes)
    if args.keep is not None:
        args.keep.mkdir(parents=True)
        report = asyncio.run(_main(plan, args.keep.resolve()))
    else:
        with tempfile.TemporaryDirectory(prefix="cairn-chaos-") as tmp:
            report = asyncio.run(_main(plan, Path(tmp)))
    print("\n".join(report.lines()))
    print(json.dumps({"seed": report.seed, "duration_s": plan.duration_s,
                      "commits": report.commits, "kills": dict(report.kills),
                      "broker_restarts": report.broker_restarts, "tasks": dict(report.tasks),
                      "published": report.published, "settle_s": round(report.settle_s, 1),
                      "broken": report.broken}))
    return 1 if report.broken else 0


if __name__ == "__main__":
    sys.exit(main())
