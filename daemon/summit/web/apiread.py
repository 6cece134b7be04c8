"""The API's read models: recipes, builders, the queue graph, events, a task's log, and the
repository's channels and generations, as plain JSON-ready data.

Channels are read from vessel itself, over the same read-only HTTP every builder uses:
each channel's ``current/index.json.minisig`` is small and its signed trusted comment names
the generation and when it was signed, so summit reports what vessel really serves (a
promotion or a rollback made with ``cairn vessel`` included). The history of generations
is what summit learned from ``package-published`` events, and is labelled as such.
"""

from __future__ import annotations

import asyncio
import re
import time
import weakref
from collections import Counter
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import aiohttp

from daemon.formats import layout
from daemon.summit import store
from daemon.summit.planning.eta import Eta
from daemon.summit.planning.progress import Limit, Progress, limit, progress
from daemon.summit.planning.rootcause import Blockage, CauseKind, Hold, root_causes
from daemon.summit.planning.states import Task, TaskState
from daemon.summit.planning.views import Graph, counts, queue_graph
from daemon.summit.service import Summit
from daemon.summit.web.live import Live
from daemon.summit.web.numbers import whole
from events.errors import CairnError
from events.payloads import HTTP_URL_PATTERN

_HTTP_URL = re.compile(HTTP_URL_PATTERN)


def is_http_url(url: object) -> bool:
    """Whether ``url`` may become a link on a page: ``http(s)://`` only. Events are checked
    when they arrive; links are checked again here, where they are shown, because the
    database may hold what an older summit accepted (a ``javascript:`` log URL)."""
    return isinstance(url, str) and _HTTP_URL.match(url) is not None


#: Channels looked for at vessel besides the one summit builds into.
KNOWN_CHANNELS = ("volatile", "unstable", "stable")
#: How long one look at vessel's channels is reused (a page refresh must not hammer it).
CHANNEL_CACHE_S = 2.0
_FETCH_TIMEOUT = aiohttp.ClientTimeout(total=3)


class ApiError(CairnError):
    """A request the API refuses, with the HTTP status to answer and why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def recipes(summit: Summit, repository: str | None, arch: str | None,
            text: str) -> list[dict[str, Any]]:
    """Every recipe of the planners' graphs, with what is published and its latest task."""
    out = []
    for (repo, planner_arch), planner in sorted(summit.scheduler.planners.items()):
        if (repository and repo != repository) or (arch and planner_arch != arch):
            continue
        for name in sorted(planner.graph.recipes):
            recipe = planner.graph.recipes[name]
            if text and text not in name.lower() and text not in recipe.summary.lower():
                continue
            latest = planner.latest(name)
            out.append({
                "name": name, "version": recipe.version, "release": recipe.release,
                "path": recipe.path, "summary": recipe.summary, "repository": repo,
                "arch": planner_arch, "build_deps": list(recipe.build_deps),
                "provides": sorted(planner.graph.provides.get(name, ())),
                "published_release": planner.published.releases.get(name),
                "latest_task": None if latest is None else
                {"id": latest.task_id, "state": str(latest.state), "release": latest.release},
            })
    return out


T = TypeVar("T")
#: Seconds an estimate read from the clock is reused while nothing else changed.
ESTIMATES_MAX_AGE = 15.0
#: Per scheduler: what was read from its planners, and the state it was read in.
_READS: weakref.WeakKeyDictionary[Any, dict[str, tuple[Hashable, Any]]] = \
    weakref.WeakKeyDictionary()


def _reused(summit: Summit, name: str, compute: Callable[[], T],
            max_age: float | None = None) -> T:
    """``compute()``, or its last result while nothing it reads has changed: the planners
    (the scheduler's version), the levers and the fleet. Reading 50,000 tasks takes a good
    part of a second; pages are asked for far more often than decisions are made."""
    scheduler = summit.scheduler
    # Estimates are made from the clock: kept at most ``max_age`` seconds.
    age = int(time.monotonic() // max_age) if max_age else 0
    state = (scheduler.version, age, scheduler.levers,
             tuple((b.name, b.arch, b.status, b.slots, b.heard, b.features, b.memory_mb,
                    b.disk_mb) for b in scheduler.fleet.builders.values()))
    kept = _READS.setdefault(scheduler, {})
    found = kept.get(name)
    if found is not None and found[0] == state:
        result: T = found[1]
        return result
    value = compute()
    kept[name] = (state, value)
    return value


def builders(live: Live) -> list[dict[str, Any]]:
    return [live.builder_json(live.builders[name]) for name in sorted(live.builders)]


def expected_of(summit: Summit) -> Eta:
    """When each open task and the whole queue are expected to finish (absolute times,
    valid until the next decision)."""
    return _reused(summit, "expected", summit.scheduler.expected, ESTIMATES_MAX_AGE)


def queue(summit: Summit, repository: str | None = None, arch: str | None = None) -> Graph:
    def compute() -> Graph:
        return queue_graph((p for (repo, a), p in sorted(summit.scheduler.planners.items())
                            if (not repository or repo == repository)
                            and (not arch or a == arch)), expected_of(summit).tasks)
    if repository or arch:
        return compute()
    return _reused(summit, "queue", compute, ESTIMATES_MAX_AGE)


def hold_of(summit: Summit) -> Hold:
    """Why a ready task is not given to a builder (a pause, no builder that can take it), as
    a root cause (see :mod:`daemon.summit.planning.rootcause`)."""
    scheduler = summit.scheduler

    def hold(task: Task) -> tuple[CauseKind, str] | None:
        why = scheduler.waiting_reason(task)
        if why is None:
            return None
        paused = scheduler.levers.pause_reason(task) is not None
        return (CauseKind.PAUSED if paused else CauseKind.NO_BUILDER), why
    return hold


def blockage(summit: Summit) -> Blockage:
    """Every open task held back, grouped by root cause."""
    return _reused(summit, "blockage", lambda: root_causes(
        (p for _, p in sorted(summit.scheduler.planners.items())), hold_of(summit)))


def farm_progress(summit: Summit) -> Progress:
    """The figures the metrics export, with the slots the fleet has and holds."""
    scheduler = summit.scheduler
    return progress(scheduler.all_tasks(), scheduler.fleet.builders.values(),
                    scheduler.load_of(), scheduler.levers.takes_work)


def farm_limit(summit: Summit, found: Blockage | None = None) -> Limit:
    """What limits progress now, in one sentence."""
    return limit(farm_progress(summit), found if found is not None else blockage(summit))


def queue_degrees(summit: Summit) -> tuple[Counter[int], Counter[int]]:
    """For each task of the queue: how many it waits for, and how many wait for it."""
    def compute() -> tuple[Counter[int], Counter[int]]:
        edges = queue(summit).edges
        return Counter(a for a, _ in edges), Counter(b for _, b in edges)
    return _reused(summit, "degrees", compute)


async def events(summit: Summit, task_id: int | None, limit: int,
                 offset: int) -> tuple[int, list[dict[str, Any]]]:
    """Timeline entries (every task state change and the event that caused it), newest
    first, with the task's source."""
    return await store.timeline_page(summit.db, task_id, limit, offset)


async def overview(summit: Summit, live: Live) -> dict[str, Any]:
    tasks = summit.scheduler.all_tasks()
    _, recent = await events(summit, None, 15, 0)
    found = blockage(summit)
    now = farm_limit(summit, found)
    return {"counts": counts(tasks), "builders": builders(live), "recent": recent,
            "open": sum(1 for t in tasks if t.state in (
                TaskState.NEW, TaskState.BLOCKED, TaskState.READY, TaskState.BUILDING,
                TaskState.PUBLISHING)),
            "limit": {"kind": now.kind, "text": now.text},
            "root_causes": [g.to_json() for g in found.groups], "queued": found.queued,
            "expected_finish": expected_of(summit).finish}


async def task_log(summit: Summit, live: Live, task: Task, after: int) -> dict[str, Any]:
    """The kept lines of a task's live log from ``after`` on, and where its full logs are."""
    kept = live.logs.get(task.task_id)
    lines = kept.after(after) if kept else []
    first = kept.first_seq if kept else 0
    urls = [u for u in await store.log_urls(summit.db, task.task_id) if is_http_url(u)]
    return {"task_id": task.task_id, "state": str(task.state),
            "lines": [{"seq": line.seq, "text": line.text} for line in lines],
            "first_seq": first, "next_seq": kept.next_seq if kept else 0,
            "truncated": first > after,
            "live": task.state in (TaskState.READY, TaskState.BUILDING),
            "log_urls": urls}


async def _current(session: aiohttp.ClientSession, base: str, channel: str,
                   arch: str) -> dict[str, Any]:
    url = layout.index_url(base, channel, arch)
    entry: dict[str, Any] = {"channel": channel, "arch": arch, "index_url": url,
                             "generation": None, "signed": None, "error": None}
    try:
        async with session.get(url.removesuffix(layout.INDEX) + layout.SIGNATURE,
                               timeout=_FETCH_TIMEOUT) as response:
            if response.status == 404:
                entry["error"] = "not published"
                return entry
            response.raise_for_status()
            fields = layout.parse_trusted_comment(await response.text())
    except (aiohttp.ClientError, TimeoutError, UnicodeDecodeError) as exc:
        entry["error"] = f"vessel unreachable: {exc or type(exc).__name__}"
        return entry
    if (generation := whole(fields.get("generation", ""))) is not None:
        entry["generation"] = generation
    if (signed := whole(fields.get("timestamp", ""))) is not None:
        entry["signed"] = signed
    return entry


class Channels:
    """What vessel serves now in each channel and arch, looked up at most every
    :data:`CHANNEL_CACHE_S` seconds."""

    def __init__(self, summit: Summit) -> None:
        self.summit = summit
        self._cached: tuple[float, dict[str, Any]] | None = None

    async def get(self) -> dict[str, Any]:
        if self._cached is not None and time.monotonic() - self._cached[0] < CHANNEL_CACHE_S:
            return self._cached[1]
        settings = self.summit.settings
        base = (settings.repository_url or "").rstrip("/")
        names = sorted({*KNOWN_CHANNELS, settings.channel})
        found: list[dict[str, Any]] = []
        if base:
            async with aiohttp.ClientSession() as session:
                found = list(await asyncio.gather(*(
                    _current(session, base, c, a) for c in names for a in self.summit.arches)))
        result = {"repository_url": base or None, "build_channel": settings.channel,
                  "channels": found}
        self._cached = (time.monotonic(), result)
        return result


async def generations(summit: Summit, channel: str | None, arch: str | None, limit: int,
                      offset: int) -> tuple[int, list[dict[str, Any]]]:
    """Generations summit saw published (from package-published), newest first."""
    return await store.generations_page(summit.db, channel, arch, limit, offset)
