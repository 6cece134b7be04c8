"""Summit's dashboard: server-rendered pages (jinja2) with a little local JavaScript.

Why server-rendered: every page is complete and readable without JavaScript, in any
browser, and says the same as the API because it is built from the same read models
(:mod:`daemon.summit.web.apiread`, :mod:`daemon.summit.planning.views`).
``static/live.js`` then keeps the page current over server-sent events (state badges,
counts, builders, recent events, the log and the timeline of a task) without reloading.
Every asset is served from ``static/``: the dashboard works on a farm with no internet access.
"""

from __future__ import annotations

import heapq
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from aiohttp import web
from multidict import MultiDict

from daemon.summit import queries
from daemon.summit.planning.queueview import DRAW_LIMIT, focus, layout, page_of, subgraph
from daemon.summit.planning.views import OPEN, STATE_ORDER, counts, explain_task
from daemon.summit.web.api import (
    CHANNELS_KEY,
    LIVE_KEY,
    SUMMIT_KEY,
    TOKEN_KEY,
    filter_tasks,
    queue_query,
    repositories_json,
    task_detail,
)
from daemon.summit.web.apiread import (
    ApiError,
    as_of,
    builders,
    farm_limit,
    generations,
    is_http_url,
    select_queue,
    task_log,
    view_of,
)
from daemon.summit.web.guard import signed_in_csrf
from daemon.summit.web.numbers import whole

HERE = Path(__file__).resolve().parent
ENV_KEY = web.AppKey("dashboard_env", jinja2.Environment)
PAGE_SIZE = 50
#: Ready tasks listed on the queue page in dispatch order (the first ones are what matters).
QUEUE_SHOWN = 50


def clock(epoch: float | None) -> str:
    """A UTC time of day for a page (live.js rewrites it into the browser's time zone)."""
    if not epoch:
        return "-"
    return time.strftime("%H:%M:%S", time.gmtime(epoch))


def seconds(value: float | None) -> str:
    """A duration for a person: ``42 s``, ``3 min 5 s``, ``2 h 10 min``."""
    if value is None:
        return "-"
    whole = round(value)
    if whole < 60:
        return f"{value:.1f} s" if value < 10 else f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


def size(value: int | None, unit: int = 1) -> str:
    """A size in bytes (``unit`` bytes per count: 1024 for KiB) for a person."""
    if value is None:
        return "-"
    amount = float(value * unit)
    for suffix in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or suffix == "GiB":
            return f"{amount:.0f} {suffix}" if suffix == "B" else f"{amount:.1f} {suffix}"
        amount /= 1024
    return f"{amount:.1f} GiB"  # pragma: no cover - the loop returns


def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                             autoescape=jinja2.select_autoescape(["html"]),
                             undefined=jinja2.StrictUndefined)
    env.filters["clock"] = clock
    env.filters["seconds"] = seconds
    env.filters["size"] = size
    env.filters["short"] = lambda commit: (commit or "-")[:12]
    env.globals["STATES"] = STATE_ORDER
    env.tests["http_url"] = is_http_url
    return env


def render(request: web.Request, template: str, status: int = 200,
           **context: Any) -> web.Response:
    """A page; ``csrf`` is the viewer's CSRF token when signed in (the actions' buttons are
    shown only then), ``here`` the page's own path (where an action comes back to)."""
    context.setdefault("csrf", signed_in_csrf(request, request.app[TOKEN_KEY]))
    context.setdefault("here", request.path_qs)
    html = request.app[ENV_KEY].get_template(template).render(**context)
    return web.Response(text=html, status=status, content_type="text/html")


async def overview(request: web.Request) -> web.Response:
    summit = request.app[SUMMIT_KEY]
    tasks = summit.scheduler.all_tasks()
    recent = await queries.timeline_groups(summit.db, 20)
    failed = heapq.nlargest(10, (t for t in tasks if t.state == "failed"),
                            key=lambda t: t.task_id)
    view = await view_of(summit)
    return render(request, "overview.html", page="overview", counts=counts(tasks),
                  builders=builders(request.app[LIVE_KEY]), recent=recent, failed=failed,
                  blockage=view.blockage, limit=farm_limit(summit, view.blockage),
                  repositories=await repositories_json(summit), as_of=as_of(summit, view),
                  expected_finish=view.eta.finish, now=time.time(),
                  levers=summit.scheduler.levers,
                  fleet=sorted(b.name for b in summit.scheduler.fleet.builders.values()
                               if b.present))


async def task_list(request: web.Request) -> web.Response:
    # A form leaves unused fields empty: they mean "any", not "the empty value".
    given = MultiDict((k, v) for k, v in request.query.items() if v)
    try:
        tasks = await filter_tasks(request.app[SUMMIT_KEY], given)
    except ApiError as exc:
        return render(request, "error.html", status=exc.status, page="tasks",
                      message=str(exc))
    raw_page = request.query.get("page", "1")
    number = whole(raw_page, 6) or 1
    pages = max(1, -(-len(tasks) // PAGE_SIZE))
    number = min(max(number, 1), pages)
    shown = tasks[(number - 1) * PAGE_SIZE:number * PAGE_SIZE]
    summit = request.app[SUMMIT_KEY]
    rows = [(t, explain_task(t, summit.scheduler.planners[(t.repository, t.arch)])) for t in shown]
    query = {k: v for k, v in request.query.items()
             if k in ("state", "q", "source", "cause") and v}
    cause = (await view_of(summit)).blockage.group(query["cause"]) if "cause" in query \
        else None

    def link(n: int) -> str:
        return "/tasks?" + urlencode({**query, "page": n})

    return render(request, "tasks.html", page="tasks", rows=rows, total=len(tasks),
                  number=number, pages=pages, link=link, query=query, cause=cause,
                  counts=counts(summit.scheduler.all_tasks()))


async def task_page(request: web.Request) -> web.Response:
    summit = request.app[SUMMIT_KEY]
    raw = request.match_info["task_id"]
    task_id = whole(raw)
    task = summit.scheduler.task(task_id) if task_id is not None else None
    if task is None:
        return render(request, "error.html", status=404, page="tasks",
                      message=f"There is no task {raw}.")
    planner = summit.scheduler.planners[(task.repository, task.arch)]
    detail = await task_detail(summit, task)
    log = await task_log(summit, request.app[LIVE_KEY], task, 0)
    return render(request, "task.html", page="task", task=task, detail=detail, log=log,
                  blockers=explain_task(task, planner))


def _page_number(raw: str) -> int:
    return whole(raw, 6) or 1


async def queue_page(request: web.Request) -> web.Response:
    """Columns summarised, a search listed a page at a time, and a drawing only of a small
    selection or of one task's ancestors and descendants (see planning/queueview.py), from
    the same search and the same view as ``/api/v1/queue``."""
    summit = request.app[SUMMIT_KEY]
    view = await view_of(summit)
    q = request.query
    query = {k: q[k][:100] for k in ("state", "q", "repository", "column", "focus")
             if q.get(k)}
    try:
        found = select_queue(view, queue_query(MultiDict(
            (k, v) for k, v in query.items() if k != "focus")))
    except ApiError as exc:
        return render(request, "error.html", status=exc.status, page="queue",
                      message=str(exc))
    focus_id = whole(query.get("focus", ""))
    focused = focus(view.queue, focus_id) if focus_id is not None else None
    if focused is not None:
        drawn = layout(focused.graph)
    elif len(found.matching) <= DRAW_LIMIT:
        drawn = layout(subgraph(view.queue, (n.task_id for n in found.matching)))
    else:
        drawn = None
    rows, number, pages = page_of(found.matching, _page_number(q.get("page", "1")), PAGE_SIZE)
    kept = {k: v for k, v in query.items() if k != "focus"}

    def link(**change: object) -> str:
        return "/queue?" + urlencode({k: v for k, v in {**kept, **change}.items() if v})

    return render(request, "queue.html", page="queue", queued=len(view.queue.ordered),
                  layout=drawn, focused=focused, summary=found.columns, rows=rows,
                  total=len(found.matching), number=number, pages=pages, link=link,
                  page_link=lambda n: link(page=n, focus=query.get("focus")),
                  query=query, degrees=view.queue.degrees,
                  open_states=[s for s in STATE_ORDER if s in OPEN],
                  repositories=sorted(summit.repos), draw_limit=DRAW_LIMIT,
                  expected_finish=view.eta.finish, now=time.time(), as_of=as_of(summit, view),
                  waiting=[(t, summit.scheduler.waiting_reason(t))
                           for t in summit.scheduler.queue()[:QUEUE_SHOWN]],
                  waiting_total=len(summit.scheduler.waiting()),
                  limit=farm_limit(summit, view.blockage))


async def repository_page(request: web.Request) -> web.Response:
    summit = request.app[SUMMIT_KEY]
    _, kept = await generations(summit, None, None, 50, 0)
    return render(request, "repository.html", page="repository",
                  repositories=await repositories_json(summit),
                  channels=await request.app[CHANNELS_KEY].get(), generations=kept)


def add_dashboard(app: web.Application) -> None:
    """Mount the pages and their assets (needs :func:`daemon.summit.web.api.add_routes`)."""
    app[ENV_KEY] = environment()
    app.router.add_get("/", overview)
    app.router.add_get("/tasks", task_list)
    app.router.add_get("/tasks/{task_id}", task_page)
    app.router.add_get("/queue", queue_page)
    app.router.add_get("/repository", repository_page)
    app.router.add_static("/static", HERE / "static", append_version=False)
