"""Mass rebuild: every recipe of the real corpus published, then one commit bumps them all.

    .venv/bin/python bench/mass_rebuild.py --corpus ../shared/corpora/serpent-recipes \\
        --builders 8 [--broker amqp://guest:guest@127.0.0.1:5672/ | --cluster]

1. The corpus becomes a git repository (one commit), and vessel's ``volatile`` channel is
   seeded with what the ``noop`` backend makes of every recipe at that commit (real archives,
   one generation: see ``bench/mass_seed.py``).
2. The farm starts (``noop`` builders): embedded by default, or on RabbitMQ with ``--broker``
   (a vhost of its own; summit, vessel and the journal their own processes, see
   ``bench/mass_farm.py``). ``--cluster`` runs the benchmark twice in one run, on a private
   RabbitMQ node and on a private three-node cluster (quorum queues on all three, every
   client given the three addresses), both started here, and reports them side by side.
   Summit seeds what is published from vessel's index and plans the first commit: nothing
   to build.
3. A commit raises every release by one; summit is asked to fetch it, and the run is watched
   until every task is final.

Figures (from the journal, which records every event with its time and causation id):
``elapsed_s`` from the bump's ``commit-seen`` to idle; dispatch latency from a dependency's
``package-published`` to each ``task-ready`` it caused; summit's CPU per task. The last line of
stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.mass_farm import (
    MOVING,
    BenchFarm,
    EmbeddedBench,
    PrivateBroker,
    ProcessBench,
    snapshot,
    unfinished,
    warm_builders,
)
from bench.mass_seed import bump_all, make_repo, seed_vessel
from daemon.journal import store as journal_store
from daemon.runtime import LogLevel, LogSection, configure_logging
from events.envelope import Event
from events.sqlite import Database
from tests.support.ports import free_port
from tests.support.rabbitmq import Epmd, RabbitCluster

LATENCY_METHOD = (
    "for every task-ready event in the journal whose causation id is a package-published "
    "event: task-ready.time - package-published.time (both are the events' own CloudEvents "
    "'time', stamped when vessel wrote its publication to its outbox and when summit decided "
    "the dispatch), i.e. vessel's commit + outbox relay + broker + summit's handling")
DEFAULT_CORPUS = Path(__file__).resolve().parents[1] / ".." / "shared" / "corpora" / \
    "serpent-recipes"


@dataclass(frozen=True)
class Run:
    bump: str
    idle_wall: float
    cpu_s: dict[str, float]
    summit_cpu_s: float
    states: dict[str, int]


async def wait_for(summit_db: Path, commit: str, timeout: float, poll: float,
                   want_tasks: bool) -> float:
    """Poll summit's database until it has planned ``commit`` and is idle; the wall time."""
    deadline = time.monotonic() + timeout
    last: dict[str, int] = {}
    while time.monotonic() < deadline:
        snap = snapshot(summit_db)
        if not want_tasks and snap.planned == commit and snap.outbox == 0 \
                and not any(snap.states.get(s) for s in MOVING):
            if snap.states:
                print(f"  WARNING: the published commit left tasks: {snap.states}", flush=True)
            return time.time()
        if want_tasks and snap.idle_at(commit):
            return time.time()
        if snap.states != last and want_tasks:
            last = snap.states
            print("  tasks: " + ", ".join(f"{k} {v}" for k, v in sorted(last.items())),
                  flush=True)
        await asyncio.sleep(poll)
    raise TimeoutError(f"summit did not get to idle at {commit[:12]} in {timeout:g} s: "
                       f"{snapshot(summit_db)}")


async def settle_journal(path: Path, quiet: float = 1.0, timeout: float = 60.0) -> None:
    """Wait until the journal stops growing (it may lag the farm by a few events)."""
    last, since = -1, time.monotonic()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with Database.open(path, journal_store.MIGRATIONS) as db:
            row = await db.fetchone("SELECT count(*) AS n FROM journal")
        count = int(row["n"]) if row else 0
        if count != last:
            last, since = count, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        await asyncio.sleep(0.2)


async def drive(farm: BenchFarm, repo: Path, first: str, args: argparse.Namespace) -> Run:
    """Wait for the first plan (nothing to do), bump, wait for idle."""
    await wait_for(farm.summit_db, first, 120, 0.2, want_tasks=False)
    print("summit planned the published commit: nothing to build", flush=True)
    await warm_builders(farm, repo, first)
    bump = await asyncio.to_thread(bump_all, repo)
    cpu0 = farm.cpu_seconds()
    profiler = start_profiler(args.profile)
    await farm.refresh()
    print(f"bumped every release in {bump[:12]}; building", flush=True)
    idle = await wait_for(farm.summit_db, bump, args.timeout, args.poll, want_tasks=True)
    stop_profiler(profiler)
    cpu1 = farm.cpu_seconds()
    cpu = {name: round(cpu1[name] - cpu0[name], 3) for name in cpu1}
    await settle_journal(farm.journal_db)
    return Run(bump, idle, cpu, cpu[farm.summit_cpu_key], snapshot(farm.summit_db).states)


def start_profiler(path: Path | None) -> subprocess.Popen[bytes] | None:
    """py-spy sampling this process and its children (the services of a process farm) from
    the bump to idle only: seeding and warm-up stay out of the profile. Read the result with
    ``bench/profile_top.py``."""
    if path is None:
        return None
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return subprocess.Popen([spy, "record", "--format", "raw", "--rate", "20", "--subprocesses",
                             "--output", str(path), "--pid", str(os.getpid())],
                            stdout=subprocess.DEVNULL)


def stop_profiler(profiler: subprocess.Popen[bytes] | None) -> None:
    if profiler is not None:
        profiler.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        profiler.wait(timeout=60)


async def journal_events(path: Path) -> list[Event[Any]]:
    async with Database.open(path, journal_store.MIGRATIONS) as db:
        return await journal_store.select(db, journal_store.Filters())


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: a value that was observed)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def _ms(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds() * 1000


def analyse(events: list[Event[Any]], run: Run) -> dict[str, Any]:
    """The benchmark's figures from the journal and the final task states."""
    seen = [e for e in events if e.type == "commit-seen"
            and getattr(e.data, "new_commit", None) == run.bump]
    if not seen:
        raise SystemExit(f"the journal has no commit-seen for {run.bump}")
    start = seen[0].time
    published = {e.id: e for e in events if e.type == "package-published"}
    latencies = [_ms(published[e.causationid].time, e.time) for e in events
                 if e.type == "task-ready" and e.causationid in published]
    ready_by_commit = sum(1 for e in events if e.type == "task-ready"
                          and e.causationid == seen[0].id)
    after = [e.time for e in events if e.time >= start]
    total = sum(run.states.values())
    completed = run.states.get("completed", 0)
    return {
        "elapsed_s": round(run.idle_wall - start.timestamp(), 3),
        "last_event_s": round((max(after) - start).total_seconds(), 3),
        "completed": completed,
        "tasks": dict(sorted(run.states.items())),
        "dispatched_at_commit": ready_by_commit,
        "dispatched_by_publication": len(latencies),
        "p50_ms": round(statistics.median(latencies), 2) if latencies else None,
        "p99_ms": round(percentile(latencies, 99), 2) if latencies else None,
        "max_ms": round(max(latencies), 2) if latencies else None,
        "latency_method": LATENCY_METHOD,
        "summit_cpu_s": run.summit_cpu_s,
        "summit_cpu_s_per_task": round(run.summit_cpu_s / total, 5) if total else None,
        "cpu_s": run.cpu_s,
        "publications": sum(1 for e in events if e.type == "package-published"
                            and e.time >= start),
    }


def make_farm(args: argparse.Namespace, work: Path, repo: Path,
              private: PrivateBroker | None = None
              ) -> tuple[EmbeddedBench | ProcessBench, Path, str]:
    """The farm for ``--broker`` (or a private broker), where its vessel keeps its state,
    and how to name it."""
    if private is not None:
        farm = ProcessBench(work / "state", repo, args.builders, private, args.log_level)
        nodes = len(private.cluster.nodes)
        return farm, farm.vessel_state, f"rabbitmq private {nodes}-node"
    if args.broker.startswith("memory"):
        return (EmbeddedBench(work / "state", repo, args.builders), work / "state" / "vessel",
                "embedded")
    farm = ProcessBench(work / "state", repo, args.builders, args.broker, args.log_level)
    return farm, farm.vessel_state, "rabbitmq"


async def run(args: argparse.Namespace, work: Path,
              private: PrivateBroker | None = None) -> dict[str, Any]:
    repo = work / "recipes"
    t0 = time.perf_counter()
    first = await asyncio.to_thread(make_repo, args.corpus, repo)
    farm, vessel_state, broker = make_farm(args, work, repo, private)
    seeded = await seed_vessel(vessel_state, repo, first)
    print(f"seeded volatile/x86_64 with {seeded.packages} packages of {seeded.recipes} recipes "
          f"in {time.perf_counter() - t0:.1f} s (without a manifest: "
          f"{', '.join(seeded.without_manifest)})", flush=True)
    try:
        await farm.start()
        print(f"farm up on {broker}, {args.builders} noop builders", flush=True)
        done = await drive(farm, repo, first, args)
    finally:
        await farm.stop()
    figures = analyse(await journal_events(farm.journal_db), done)
    problems = unfinished(farm.summit_db)
    return {"benchmark": "mass_rebuild", "broker": broker, "builders": args.builders,
            "recipes": seeded.recipes, "seeded_packages": seeded.packages, **figures,
            "cpu_basis": farm.cpu_basis, "not_completed": problems[:50],
            "targets": {"completed": seeded.recipes, "elapsed_s": 60, "p50_ms": 50}}


def on_private_brokers(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The benchmark on a private single node, then on a private three-node cluster."""
    results: dict[str, Any] = {}
    epmd = Epmd(work / "epmd", free_port()).start()
    try:
        for label, size in (("single_node", 1), ("cluster", 3)):
            cluster = RabbitCluster.on_loopback(work / label / "rabbit", epmd, size=size)
            print(f"== {label}: starting {size} private RabbitMQ node(s)", flush=True)
            cluster.start()
            try:
                results[label] = asyncio.run(run(args, work / label, PrivateBroker(cluster)))
            finally:
                cluster.stop()
            report(results[label])
    finally:
        epmd.stop()
    single, clustered = results["single_node"], results["cluster"]
    print("single node vs three-node cluster: "
          + ", ".join(f"{key} {single[key]} vs {clustered[key]}"
                      for key in ("elapsed_s", "p50_ms", "p99_ms", "summit_cpu_s")))
    return {"benchmark": "mass_rebuild", "builders": args.builders, **results}


def report(result: dict[str, Any]) -> None:
    print(f"{result['completed']} of {sum(result['tasks'].values())} tasks completed "
          f"({result['tasks']}) in {result['elapsed_s']} s from the bump's commit-seen to idle")
    print(f"dispatch latency package-published -> task-ready over "
          f"{result['dispatched_by_publication']} dispatches: p50 {result['p50_ms']} ms, "
          f"p99 {result['p99_ms']} ms, max {result['max_ms']} ms "
          f"({result['dispatched_at_commit']} dispatched at the commit itself)")
    print(f"summit CPU: {result['summit_cpu_s']} s, {result['summit_cpu_s_per_task']} s/task "
          f"[{result['cpu_basis']}]; CPU seconds by part: {result['cpu_s']}")
    for task in result["not_completed"]:
        print(f"not completed: {task['source']} {task['state']}: "
              f"{task['failure'] or task['blocked_by']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS,
                        help="serpent-recipes directory (default ../shared/corpora/...)")
    parser.add_argument("--builders", type=int, default=8)
    parser.add_argument("--broker", default="memory://",
                        help="amqp://user:pass@host:port/ of RabbitMQ (a vhost is made and "
                             "deleted); default: the embedded broker")
    parser.add_argument("--cluster", action="store_true",
                        help="run on a private RabbitMQ node, then on a private three-node "
                             "cluster (both started here), and report both")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for idle")
    parser.add_argument("--poll", type=float, default=0.1, help="seconds between idle checks")
    parser.add_argument("--log-level", default="warning", choices=[lv.value for lv in LogLevel],
                        help="services' log level (to WORK/bench.log and WORK/state/*.log)")
    parser.add_argument("--profile", type=Path, default=None,
                        help="write a py-spy profile (raw) of the run from the bump to idle "
                             "here (needs py-spy; summarise with bench/profile_top.py)")
    parser.add_argument("--keep", type=Path, default=None,
                        help="work in this (new) directory and keep it (logs, databases)")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        if args.keep is not None:
            args.keep.mkdir(parents=True)
            work = args.keep.resolve()
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cairn-mass-")))
        log_file = stack.enter_context((work / "bench.log").open("a", encoding="utf-8"))
        configure_logging(LogSection(level=LogLevel(args.log_level)), service="bench",
                          stream=log_file)
        if args.cluster:
            result = on_private_brokers(args, work)
        else:
            result = asyncio.run(run(args, work))
            report(result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
