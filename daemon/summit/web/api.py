"""Summit's JSON API (``/api/v1``): what the CLI, the dashboard and scripts read and do.

Reads are open; calls that change something (retry, cancel, refresh) need the admin token
as ``Authorization: Bearer <token>``, compared in constant time. Every answer is JSON,
errors included (``{"error": "..."}``): a bad query parameter is a 400 naming it, an
unknown id a 404. Lists are paginated with ``limit``/``offset`` and say their ``total``.
The whole surface is described by :mod:`daemon.summit.web.openapi` at ``/api/v1/openapi.json``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import structlog
from aiohttp import web
from multidict import MultiMapping

from daemon.summit import queries
from daemon.summit.planning.states import Task, TaskState
from daemon.summit.planning.views import OPEN, counts, explain_task
from daemon.summit.service import Summit
from daemon.summit.web.apiread import (
    ApiError,
    Channels,
    QueueQuery,
    builders,
    events,
    generations,
    overview,
    queue_json,
    recipes,
    task_log,
    view_of,
)
from daemon.summit.web.guard import admitted
from daemon.summit.web.live import Live
from daemon.summit.web.numbers import whole
from daemon.summit.web.openapi import document
from daemon.summit.web.streams import stream_log, stream_updates
from events.errors import CairnError
from events.payloads import NAME_MAX_LENGTH, NAME_PATTERN

log = structlog.get_logger("cairn.summit.api")

SUMMIT_KEY = web.AppKey("summit", Summit)
TOKEN_KEY = web.AppKey("admin_token", str)
LIVE_KEY = web.AppKey("live", Live)
CHANNELS_KEY = web.AppKey("channels", Channels)
MAX_PAGE = 500
MAX_TEXT = 100
#: Builds of its source a task's detail lists (newest first).
HISTORY_ON_TASK = 20

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
T = TypeVar("T")


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Under ``/api/``, every error is a JSON object with a message, whatever raised it."""
    if not request.path.startswith("/api/"):
        return await handler(request)
    try:
        return await handler(request)
    except ApiError as exc:
        return _error(exc.status, str(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 405:
            allowed = ", ".join(sorted(getattr(exc, "allowed_methods", ()) or ()))
            answer = _error(405, f"{request.method} is not allowed on {request.path}; "
                                 f"allowed: {allowed or 'none'}")
            answer.headers["Allow"] = allowed
            return answer
        if exc.status == 404 and (exc.text or "").startswith("404"):
            return _error(404, f"there is nothing at {request.path}; the API is described "
                               "at /api/v1/openapi.json")
        return _error(exc.status, exc.text or exc.reason)
    except Exception as exc:  # a bug, still answered in the API's own shape
        log.exception("api.failed", path=request.path)
        return _error(500, f"summit failed on this request ({type(exc).__name__}); its log "
                           "has the details")


def admin(handler: Handler) -> Handler:
    """Refuse a changing call without the admin token (bearer, or a dashboard session with
    its CSRF token: :mod:`daemon.summit.web.guard`)."""
    async def guarded(request: web.Request) -> web.StreamResponse:
        if not admitted(request, request.app[TOKEN_KEY]):
            return _error(401, "this call needs the admin token (Authorization: Bearer ...)")
        return await handler(request)
    return guarded


# -- query parameters ----------------------------------------------------------------------
def _once(query: MultiMapping[str], name: str) -> str | None:
    """A query parameter given at most once (``?state=a&state=b`` is ambiguous: a 400)."""
    values = query.getall(name, [])
    if len(values) > 1:
        raise ApiError(400, f"{name} is given {len(values)} times; give it once")
    return values[0] if values else None


def int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter within [low, high]; anything else is a 400 naming it."""
    raw = _once(request.query, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer, not {raw!r}") from None
    if not low <= value <= high:
        raise ApiError(400, f"{name} must be between {low} and {high}, not {value}")
    return value


def page(request: web.Request, default: int = 100) -> tuple[int, int]:
    return (int_param(request, "limit", default, 1, MAX_PAGE),
            int_param(request, "offset", 0, 0, 10**9))


def paginated(request: web.Request, key: str, items: Sequence[T],
              render: Callable[[T], Any], **extra: Any) -> web.Response:
    limit, offset = page(request)
    return web.json_response({"total": len(items), "offset": offset, "limit": limit, **extra,
                              key: [render(i) for i in items[offset:offset + limit]]})


def text_param(query: MultiMapping[str], name: str) -> str | None:
    """A text filter: at most :data:`MAX_TEXT` characters (so a URL stays under the HTTP
    server's line limit); empty means not given."""
    value = _once(query, name)
    if value is not None and len(value) > MAX_TEXT:
        raise ApiError(400, f"{name} must be at most {MAX_TEXT} characters")
    return value or None


def _text(request: web.Request, name: str) -> str | None:
    return text_param(request.query, name)


# -- tasks ---------------------------------------------------------------------------------
def _matches(task: Task, state: str | None, source: str | None, text: str,
             repository: str | None, arch: str | None) -> bool:
    if state is not None and task.state != state:
        return False
    if source is not None and task.source != source:
        return False
    if repository is not None and task.repository != repository:
        return False
    if arch is not None and task.arch != arch:
        return False
    if not text:
        return True
    return any(text in (field or "").lower() for field in
               (task.source, task.failure, task.builder, task.version))


async def filter_tasks(summit: Summit, query: MultiMapping[str]) -> list[Task]:
    """The tasks the query asks for, newest first (shared with the dashboard's list)."""
    state = _once(query, "state")
    if state is not None and state not in set(TaskState):
        raise ApiError(400, f"unknown state {state!r}; one of {', '.join(TaskState)}")
    source, repository, arch = (text_param(query, n) for n in ("source", "repository", "arch"))
    text = (text_param(query, "q") or "").lower()
    cause = text_param(query, "cause")
    everything = summit.scheduler.all_tasks()
    if cause is not None:
        group = (await view_of(summit)).blockage.group(cause)
        if group is None:
            raise ApiError(404, f"nothing is blocked by {cause!r} now")
        held = set(group.tasks)
        everything = [t for t in everything if t.task_id in held]
    tasks = [t for t in everything if _matches(t, state, source, text, repository, arch)]
    tasks.sort(key=lambda t: t.task_id, reverse=True)
    return tasks


async def list_tasks(request: web.Request) -> web.Response:
    tasks = await filter_tasks(request.app[SUMMIT_KEY], request.query)
    scheduler = request.app[SUMMIT_KEY].scheduler
    return paginated(request, "tasks", tasks,
                     lambda t: queries.task_json(t, waiting=scheduler.waiting_reason(t)),
                     counts=counts(request.app[SUMMIT_KEY].scheduler.all_tasks()))


def task_or_404(request: web.Request) -> tuple[Summit, Task]:
    summit = request.app[SUMMIT_KEY]
    raw = request.match_info["task_id"]
    task_id = whole(raw)
    task = summit.scheduler.task(task_id) if task_id is not None else None
    if task is None:  # ``abc`` and ``²`` included: no task has that id
        raise ApiError(404, f"there is no task {raw}")
    return summit, task


async def task_detail(summit: Summit, task: Task) -> dict[str, Any]:
    """A task with what it waits for, what waits for it, its blockers in words, its
    timeline and its builds (with their log URLs)."""
    planner = summit.scheduler.planners[(task.repository, task.arch)]
    depends = sorted(planner.schedule.effective_deps(task.source))
    dependents = sorted(planner.schedule.effective_dependents(task.source))

    def refs(sources: list[str]) -> list[dict[str, Any]]:
        out = []
        for source in sources:
            other = planner.latest(source)
            out.append({"source": source, "id": other.task_id if other else None,
                        "state": str(other.state) if other else None})
        return out

    timeline = await queries.task_timeline(summit.db, task.task_id)
    builds = await queries.task_builds(summit.db, task.task_id)
    history = await queries.source_history(summit.db, task.source, task.repository, task.arch,
                                         HISTORY_ON_TASK)
    return queries.task_json(
        task, critical_path=planner.critical_path(task.source), depends_on=depends,
        dependencies=refs(depends), dependents=refs(dependents),
        blockers=[e.to_json() for e in explain_task(task, planner)],
        timeline=timeline, builds=builds, history=history,
        waiting=summit.scheduler.waiting_reason(task))


async def source_history(request: web.Request) -> web.Response:
    """Every build of a source, newest first, with what each consumed."""
    summit = request.app[SUMMIT_KEY]
    source = request.match_info["source"]
    if len(source) > NAME_MAX_LENGTH or not re.fullmatch(NAME_PATTERN, source):
        raise ApiError(400, f"{source[:100]!r} is not a source name")
    repository, arch = text_param(request.query, "repository"), text_param(request.query, "arch")
    limit = int_param(request, "limit", 50, 1, 1000)
    builds = await queries.source_history(summit.db, source, repository, arch, limit)
    return web.json_response({"source": source, "builds": builds})


async def show_task(request: web.Request) -> web.Response:
    summit, task = task_or_404(request)
    return web.json_response(await task_detail(summit, task))


async def show_log(request: web.Request) -> web.Response:
    _, task = task_or_404(request)
    after = int_param(request, "after", 0, 0, 10**12)
    return web.json_response(await task_log(request.app[SUMMIT_KEY], request.app[LIVE_KEY],
                                            task, after))


async def log_stream(request: web.Request) -> web.StreamResponse:
    _, task = task_or_404(request)
    after = int_param(request, "after", 0, 0, 10**12)
    return await stream_log(request, request.app[LIVE_KEY], task.task_id, after)


async def updates_stream(request: web.Request) -> web.StreamResponse:
    return await stream_updates(request, request.app[LIVE_KEY])


@admin
async def retry_task(request: web.Request) -> web.Response:
    summit, task = task_or_404(request)
    try:
        new = await summit.operations.retry(task.task_id)
    except CairnError as exc:
        return _error(409, str(exc))
    return web.json_response(queries.task_json(new), status=201)


@admin
async def cancel_task(request: web.Request) -> web.Response:
    summit, task = task_or_404(request)
    try:
        changed = await summit.operations.cancel(task.task_id)
    except CairnError as exc:
        return _error(409, str(exc))
    return web.json_response(queries.task_json(changed))


# -- repositories --------------------------------------------------------------------------
async def repositories_json(summit: Summit) -> list[dict[str, Any]]:
    errors = await queries.recipe_errors(summit.db)
    planned = await queries.planned_commits(summit.db)
    out = []
    for row in await queries.repositories(summit.db):
        config = summit.repos.get(row.name)
        out.append({"name": row.name, "url": row.url, "branch": row.branch, "head": row.head,
                    "fetched": row.fetched, "error": row.error,
                    "arches": list(config.arches) if config else [],
                    "planned": planned.get(row.name, {}),
                    "recipes": sum(len(p.graph.recipes) for (name, _), p in
                                   summit.scheduler.planners.items() if name == row.name),
                    "recipe_errors": [e for e in errors if e["repository"] == row.name],
                    "environment": next((p.repo.environment for (name, _), p in
                                         sorted(summit.scheduler.planners.items())
                                         if name == row.name), None)})
    return out


async def list_repositories(request: web.Request) -> web.Response:
    repos = await repositories_json(request.app[SUMMIT_KEY])
    return paginated(request, "repositories", repos, lambda r: r)


async def show_repository(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    for repo in await repositories_json(request.app[SUMMIT_KEY]):
        if repo["name"] == name:
            return web.json_response(repo)
    raise ApiError(404, f"there is no repository {name!r}")


@admin
async def refresh_repository(request: web.Request) -> web.Response:
    summit = request.app[SUMMIT_KEY]
    try:
        summit.watcher.refresh(request.match_info["name"])
    except CairnError as exc:
        return _error(404, str(exc))
    return web.json_response({"status": "refreshing"}, status=202)


# -- the rest ------------------------------------------------------------------------------
async def list_recipes(request: web.Request) -> web.Response:
    found = recipes(request.app[SUMMIT_KEY], _text(request, "repository"),
                    _text(request, "arch"), (_text(request, "q") or "").lower())
    return paginated(request, "recipes", found, lambda r: r)


async def list_builders(request: web.Request) -> web.Response:
    return web.json_response({"builders": builders(request.app[LIVE_KEY])})


def queue_query(query: MultiMapping[str]) -> QueueQuery:
    """A search of the queue from query parameters (shared with the dashboard's queue)."""
    state = text_param(query, "state")
    if state is not None and state not in OPEN:
        raise ApiError(400, f"state {state!r} is not a state of the open queue; one of "
                            f"{', '.join(s for s in TaskState if s in OPEN)}")
    return QueueQuery(state, text_param(query, "q"), text_param(query, "repository"),
                      text_param(query, "arch"), text_param(query, "column"))


async def show_queue(request: web.Request) -> web.Response:
    """One page of the open queue (``limit``/``offset``) a search finds, with the edges
    among that page's tasks, the columns, and one task's focus (``focus``)."""
    summit = request.app[SUMMIT_KEY]
    query = queue_query(request.query)
    limit, offset = page(request)
    focus_id = int_param(request, "focus", 0, 0, 10**12) or None
    view = await view_of(summit)
    return web.json_response(queue_json(summit, view, query, limit, offset, focus_id))


async def list_events(request: web.Request) -> web.Response:
    limit, offset = page(request, 50)
    task_id = int_param(request, "task_id", 0, 0, 10**12) or None
    total, rows = await events(request.app[SUMMIT_KEY], task_id, limit, offset)
    return web.json_response({"total": total, "offset": offset, "limit": limit,
                              "events": rows})


async def show_overview(request: web.Request) -> web.Response:
    return web.json_response(await overview(request.app[SUMMIT_KEY], request.app[LIVE_KEY]))


async def list_channels(request: web.Request) -> web.Response:
    return web.json_response(await request.app[CHANNELS_KEY].get())


async def list_generations(request: web.Request) -> web.Response:
    limit, offset = page(request)
    total, rows = await generations(request.app[SUMMIT_KEY], _text(request, "channel"),
                                    _text(request, "arch"), limit, offset)
    return web.json_response({"total": total, "offset": offset, "limit": limit,
                              "generations": rows})


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(document())


async def api_root(request: web.Request) -> web.Response:
    return web.json_response({"name": "cairn summit", "openapi": "/api/v1/openapi.json",
                              "dashboard": "/"})


def add_routes(app: web.Application, summit: Summit, admin_token: str,
               live: Live | None = None) -> None:
    """Mount the API; without ``live`` (no telemetry) builders and logs are simply empty."""
    app[SUMMIT_KEY] = summit
    app[TOKEN_KEY] = admin_token
    app[LIVE_KEY] = live if live is not None else Live.offline(summit)
    app[CHANNELS_KEY] = Channels(summit)

    async def close_streams(app: web.Application) -> None:
        app[LIVE_KEY].close_streams()

    app.on_shutdown.append(close_streams)
    app.middlewares.append(json_errors)
    get, post = app.router.add_get, app.router.add_post
    get("/api/v1", api_root)
    get("/api/v1/openapi.json", openapi)
    get("/api/v1/overview", show_overview)
    get("/api/v1/stream", updates_stream)
    get("/api/v1/tasks", list_tasks)
    get("/api/v1/tasks/{task_id}", show_task)
    get("/api/v1/tasks/{task_id}/log", show_log)
    get("/api/v1/sources/{source}/history", source_history)
    get("/api/v1/tasks/{task_id}/log/stream", log_stream)
    post("/api/v1/tasks/{task_id}/retry", retry_task)
    post("/api/v1/tasks/{task_id}/cancel", cancel_task)
    get("/api/v1/repositories", list_repositories)
    get("/api/v1/repositories/{name}", show_repository)
    post("/api/v1/repositories/{name}/refresh", refresh_repository)
    get("/api/v1/recipes", list_recipes)
    get("/api/v1/builders", list_builders)
    get("/api/v1/queue", show_queue)
    get("/api/v1/events", list_events)
    get("/api/v1/channels", list_channels)
    get("/api/v1/generations", list_generations)
