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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from daemon.formats import layout
from daemon.summit import queries
from daemon.summit.planning.progress import Limit, Progress, limit, progress
from daemon.summit.planning.queueview import (
    Column,
    QueueIndex,
    column_of,
    columns,
    focus,
    select,
    subgraph,
)
from daemon.summit.planning.rootcause import Blockage
from daemon.summit.planning.states import Task, TaskState
from daemon.summit.planning.views import Graph, Node, counts
from daemon.summit.service import Summit
from daemon.summit.web.live import Live
from daemon.summit.web.numbers import whole
from daemon.summit.web.readview import View, read_view, views_of
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


def builders(live: Live) -> list[dict[str, Any]]:
    return [live.builder_json(live.builders[name]) for name in sorted(live.builders)]


async def view_of(summit: Summit) -> View:
    """The latest view of the queue, its estimates and root causes (:mod:`.readview`)."""
    return await read_view(summit.scheduler)


def as_of(summit: Summit, view: View) -> dict[str, Any]:
    """How old ``view`` is, for an answer (``current``: nothing changed since)."""
    return view.as_of(views_of(summit.scheduler).current(summit.scheduler))


def farm_progress(summit: Summit) -> Progress:
    """The figures the metrics export, with the slots the fleet has and holds."""
    scheduler = summit.scheduler
    return progress(scheduler.all_tasks(), scheduler.fleet.builders.values(),
                    scheduler.load_of(), scheduler.levers.takes_work)


def farm_limit(summit: Summit, found: Blockage) -> Limit:
    """What limits progress now, in one sentence."""
    return limit(farm_progress(summit), found)


@dataclass(frozen=True)
class QueueQuery:
    """A search of the queue: every field narrows it (None: any)."""

    state: str | None = None
    #: A source name's part, or a shell pattern (``lib*``).
    pattern: str | None = None
    repository: str | None = None
    arch: str | None = None
    column: str | None = None


@dataclass(frozen=True)
class QueueSelection:
    """What a search finds (in column order), and the columns of what it finds when the
    column is not narrowed."""

    matching: Sequence[Node]
    columns: Sequence[Column]


def select_queue(view: View, query: QueueQuery) -> QueueSelection:
    """The queue's nodes a search finds, with the columns they fall in."""
    scope = select(view.queue, state=query.state, pattern=query.pattern,
                   repository=query.repository, arch=query.arch)
    summary = view.columns if scope is view.queue.ordered else tuple(columns(scope))
    if query.column is None:
        return QueueSelection(scope, summary)
    return QueueSelection([n for n in scope if column_of(n)[1] == query.column], summary)


def _node_json(node: Node, queue: QueueIndex) -> dict[str, Any]:
    waits, waited = queue.degrees(node.task_id)
    return {**node.to_json(), "column": column_of(node)[1], "waits": waits,
            "waited_by": waited}


def _graph_json(graph: Graph, queue: QueueIndex) -> dict[str, Any]:
    return {"nodes": [_node_json(n, queue) for n in graph.nodes],
            "edges": [{"from": a, "to": b} for a, b in graph.edges]}


def queue_json(summit: Summit, view: View, query: QueueQuery, limit: int, offset: int,
               focus_id: int | None) -> dict[str, Any]:
    """One page of the queue a search finds, the edges among that page's tasks, the
    columns, and (``focus_id``) one task's ancestors and descendants: never the whole
    queue."""
    found = select_queue(view, query)
    shown = found.matching[offset:offset + limit]
    page = _graph_json(subgraph(view.queue, (n.task_id for n in shown)), view.queue)
    around = focus(view.queue, focus_id) if focus_id is not None else None
    return {"total": len(found.matching), "offset": offset, "limit": limit,
            "open": len(view.queue.ordered), **page,
            "columns": [{"key": c.key, "title": c.title, "count": c.count,
                         "sample": list(c.sample), "states": dict(c.states)}
                        for c in found.columns],
            "focus": None if around is None else {
                "id": around.node.task_id, "ancestors": around.ancestors,
                "descendants": around.descendants, "cut": around.cut,
                **_graph_json(around.graph, view.queue)},
            "expected_finish": view.eta.finish, "as_of": as_of(summit, view)}


async def events(summit: Summit, task_id: int | None, limit: int,
                 offset: int) -> tuple[int, list[dict[str, Any]]]:
    """Timeline entries (every task state change and the event that caused it), newest
    first, with the task's source."""
    return await queries.timeline_page(summit.db, task_id, limit, offset)


async def overview(summit: Summit, live: Live) -> dict[str, Any]:
    tasks = summit.scheduler.all_tasks()
    _, recent = await events(summit, None, 15, 0)
    view = await view_of(summit)
    found = view.blockage
    now = farm_limit(summit, found)
    return {"counts": counts(tasks), "builders": builders(live), "recent": recent,
            "open": sum(1 for t in tasks if t.state in (
                TaskState.NEW, TaskState.BLOCKED, TaskState.READY, TaskState.BUILDING,
                TaskState.PUBLISHING)),
            "limit": {"kind": now.kind, "text": now.text},
            "root_causes": [g.to_json() for g in found.groups], "queued": found.queued,
            "expected_finish": view.eta.finish, "as_of": as_of(summit, view)}


async def task_log(summit: Summit, live: Live, task: Task, after: int) -> dict[str, Any]:
    """The kept lines of a task's live log from ``after`` on, and where its full logs are."""
    kept = live.logs.get(task.task_id)
    lines = kept.after(after) if kept else []
    first = kept.first_seq if kept else 0
    urls = [u for u in await queries.log_urls(summit.db, task.task_id) if is_http_url(u)]
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
    return await queries.generations_page(summit.db, channel, arch, limit, offset)
