"""Benchmark: summit's dashboard and API with 50,000 tasks in its store.

The recipe tree is ``plan_scale``'s (50,000 recipes in a bare git repository, a few small
cycles, realistic fan-in). A real summit (embedded bus, SQLite store) plans it from a
``commit-seen``; a builder reports itself and takes work, and two of its builds fail, so
the overview has root causes to count and the queue has every column. Then the pages are
fetched over real HTTP, each several times.

Figures: per page, the answer time right after a change (target: overview and queue < 1 s),
while nothing changed, and the size of the answer (no page ships every task: a size that
grows with the tree is a defect); and how long the background refresh takes to make the
pages' view current again after a change (it runs in a worker thread while pages answer
from the previous view, saying how old it is: :mod:`daemon.summit.web.readview`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from bench.plan_scale import generate
from daemon.summit.gitrepo import RepoConfig
from daemon.summit.planning.states import TaskState
from daemon.summit.service import Summit
from daemon.summit.web.apiread import view_of
from daemon.summit.web.readview import read_view
from events import payloads as p
from events.envelope import new_event
from events.topology import builder
from tests.support.summitpages import plan_head, served_pages, summit_service

TARGET_S = 1.0
BUILDER = "bench-1"


async def plan(summit: Summit) -> None:
    """commit-seen for the tree's head, a builder that takes work, two failed builds."""
    await summit.bus.subscribe(builder(BUILDER), lambda event: asyncio.sleep(0))
    await plan_head(summit, "bench")
    await summit.scheduler.handle(new_event(p.BuilderSeen(
        builder=BUILDER, arch="x86_64", state=p.BuilderState.ONLINE, boot="1", slots=4,
        interval_s=3600.0), source="bench"))
    assigned = [t for t in summit.scheduler.all_tasks() if t.builder == BUILDER]
    for task in assigned[:2]:
        await summit.scheduler.handle(new_event(p.BuildStarted(
            task_id=task.task_id, builder=BUILDER, arch=task.arch, attempt=task.attempt),
            source="bench"))
        await summit.scheduler.handle(new_event(p.BuildDone(
            task_id=task.task_id, attempt=task.attempt, builder=BUILDER, source=task.source,
            version=task.version, release=task.release, build_release=1, arch=task.arch,
            outcome=p.Outcome.FAILED, reason="bench: failed on purpose"), source="bench"))


async def fetch(session: aiohttp.ClientSession, summit: Summit, url: str,
                times: int) -> dict[str, Any]:
    """Answer times after a change (a decision stored: everything is read from the
    planners afresh) and while nothing changed (what was read is reused); one fetch first,
    so template compilation is not counted."""
    async def once() -> tuple[float, int]:
        started = time.perf_counter()
        async with session.get(url) as response:
            body = await response.read()
            assert response.status == 200, (url, response.status, body[:300])
        return time.perf_counter() - started, len(body)

    await once()
    changed, unchanged, size = [], [], 0
    for _ in range(times):
        summit.scheduler.version += 1  # as every stored decision does
        spent, size = await once()
        changed.append(spent)
        unchanged.append((await once())[0])
    return {"changed_median_s": round(statistics.median(changed), 3),
            "changed_max_s": round(max(changed), 3),
            "unchanged_median_s": round(statistics.median(unchanged), 3), "bytes": size}


class Stalls:
    """The longest the event loop did not get to run a 5 ms timer on time (what every
    request then waits for too)."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _watch(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(0.005)
            self.worst = max(self.worst, time.perf_counter() - started - 0.005)

    def __enter__(self) -> Stalls:
        self._task = asyncio.get_running_loop().create_task(self._watch())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def refresh(summit: Summit, times: int) -> dict[str, float]:
    """From a change to a current view again: the refresh's snapshot and computation."""
    scheduler = summit.scheduler
    spent, computing, copying = [], [], []
    for _ in range(times):
        scheduler.version += 1
        started = time.perf_counter()
        view = await read_view(scheduler, wait=True)
        spent.append(time.perf_counter() - started)
        computing.append(view.compute_s)
        copying.append(view.snapshot_s)
    return {"current_after_median_s": round(statistics.median(spent), 3),
            "compute_median_s": round(statistics.median(computing), 3),
            "snapshot_max_s": round(max(copying), 3)}


async def screenshot(url: str, out: Path) -> None:
    """A full-window screenshot of ``url`` by Debian's headless Chromium (run as a child of
    this event loop: the page is served by it)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("--screenshots needs chromium (apt-get install chromium)")
    child = await asyncio.create_subprocess_exec(
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
        "--window-size=1400,2000", f"--screenshot={out}", url,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    if await child.wait() != 0 or not await asyncio.to_thread(out.is_file):
        raise SystemExit(f"chromium could not take a screenshot of {url}")
    print(f"  screenshot of {url.split('/', 3)[-1] or 'overview'}: {out}")


async def measure(summit: Summit, times: int,
                  screenshots: Path | None = None) -> dict[str, dict[str, Any]]:
    tasks = summit.scheduler.all_tasks()
    blocked = next(t for t in tasks if t.state is TaskState.BLOCKED)
    cause = (await view_of(summit)).blockage.groups[0].cause.key
    pages = {"overview": "/", "queue": "/queue", "queue search": "/queue?q=s123",
             "queue focus": f"/queue?focus={blocked.task_id}",
             "queue column": "/queue?column=stuck", "tasks": "/tasks",
             "tasks by cause": f"/tasks?cause={quote(cause)}",
             "api overview": "/api/v1/overview", "api tasks": "/api/v1/tasks",
             "api queue": "/api/v1/queue", "api queue focus":
             f"/api/v1/queue?q=s123&focus={blocked.task_id}"}
    async with served_pages(summit, "bench-token") as base:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
            figures = {name: await fetch(session, summit, base + path, times)
                       for name, path in pages.items()}
        if screenshots is not None:
            for name, path in (("overview", "/"), ("queue", "/queue"),
                               ("queue-focus", f"/queue?focus={blocked.task_id}")):
                await screenshot(base + path, screenshots / f"{name}.png")
        return figures


async def run(recipes: int, times: int, seed: int,
              screenshots: Path | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        started = time.perf_counter()
        generate(root / "recipes.git", recipes, random.Random(seed))
        generated = time.perf_counter() - started
        async with summit_service(root, RepoConfig("bench", str(root / "recipes.git"))) \
                as summit:
            started = time.perf_counter()
            await plan(summit)
            planned = time.perf_counter() - started
            tasks = summit.scheduler.all_tasks()
            found = (await view_of(summit)).blockage
            print(f"generated {recipes} recipes in {generated:.1f}s; planned {len(tasks)} tasks "
                  f"in {planned:.1f}s; {len(found.groups)} root causes hold back "
                  f"{found.held} tasks")
            with Stalls() as stalls:
                pages = await measure(summit, times, screenshots)
                refreshed = await refresh(summit, times)
    for name, figures in pages.items():
        print(f"  {name:15} after a change: median {figures['changed_median_s'] * 1000:6.0f} "
              f"ms, max {figures['changed_max_s'] * 1000:6.0f} ms; unchanged: median "
              f"{figures['unchanged_median_s'] * 1000:6.0f} ms; {figures['bytes'] / 1024:6.1f} KiB")
    print(f"  view current again after a change: median "
          f"{refreshed['current_after_median_s'] * 1000:.0f} ms (computing "
          f"{refreshed['compute_median_s'] * 1000:.0f} ms in a worker thread; copying its "
          f"inputs held the event loop {refreshed['snapshot_max_s'] * 1000:.0f} ms at most)")
    print(f"  the event loop was held {stalls.worst * 1000:.0f} ms at most")
    return {"benchmark": "dashboard_scale", "recipes": recipes, "tasks": len(tasks),
            "root_causes": len(found.groups), "held": found.held, "pages": pages,
            "refresh": refreshed, "loop_stall_max_s": round(stalls.worst, 3),
            "targets": {"overview_s": TARGET_S, "queue_s": TARGET_S},
            "within_target": all(pages[k]["changed_median_s"] < TARGET_S
                                 for k in ("overview", "queue"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recipes", type=int, default=50_000)
    parser.add_argument("--times", type=int, default=5, help="fetches of each page")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--screenshots", type=Path, metavar="DIR",
                        help="save screenshots of the overview and the queue at this scale")
    args = parser.parse_args()
    if args.screenshots is not None:
        args.screenshots.mkdir(parents=True, exist_ok=True)
    print(json.dumps(asyncio.run(run(args.recipes, args.times, args.seed, args.screenshots))))


if __name__ == "__main__":
    main()
