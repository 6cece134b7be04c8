"""Summit's JSON API (``/api/v1``): what the CLI and, later, the dashboard read and do.

Reads are open; calls that change something (retry, cancel, refresh) need the admin token
as ``Authorization: Bearer <token>``, compared in constant time.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from daemon.summit import store
from daemon.summit.service import Summit
from daemon.summit.states import TaskState
from events.errors import CairnError

SUMMIT_KEY = web.AppKey("summit", Summit)
TOKEN_KEY = web.AppKey("admin_token", str)
MAX_PAGE = 500

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def admin(handler: Handler) -> Handler:
    """Refuse a changing call without the admin token."""
    async def guarded(request: web.Request) -> web.StreamResponse:
        expected = request.app[TOKEN_KEY]
        given = request.headers.get("Authorization", "")
        if not expected or not hmac.compare_digest(given.encode(),
                                                   f"Bearer {expected}".encode()):
            return _error(401, "this call needs the admin token (Authorization: Bearer ...)")
        return await handler(request)
    return guarded


def _int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be an integer") from None
    return max(low, min(high, value))


async def list_tasks(request: web.Request) -> web.Response:
    summit = request.app[SUMMIT_KEY]
    state = request.query.get("state")
    if state is not None and state not in set(TaskState):
        return _error(400, f"unknown state {state!r}; one of {', '.join(TaskState)}")
    source = request.query.get("source")
    text = (request.query.get("q") or "").lower()
    limit = _int(request, "limit", 100, 1, MAX_PAGE)
    offset = _int(request, "offset", 0, 0, 10**9)
    tasks = [t for planner in summit.planners.values() for t in planner.tasks.values()
             if (state is None or t.state == state) and (source is None or t.source == source)
             and (not text or text in t.source.lower() or text in (t.failure or "").lower())]
    tasks.sort(key=lambda t: t.task_id, reverse=True)
    counts: dict[str, int] = {}
    for planner in summit.planners.values():
        for t in planner.tasks.values():
            counts[str(t.state)] = counts.get(str(t.state), 0) + 1
    page = tasks[offset:offset + limit]
    return web.json_response({"total": len(tasks), "offset": offset, "limit": limit,
                              "counts": counts,
                              "tasks": [store.task_json(t) for t in page]})


def _task_or_404(request: web.Request) -> tuple[Summit, Any]:
    summit = request.app[SUMMIT_KEY]
    try:
        task_id = int(request.match_info["task_id"])
    except ValueError:
        raise web.HTTPNotFound(text="no such task") from None
    for planner in summit.planners.values():
        if task_id in planner.tasks:
            return summit, planner.tasks[task_id]
    raise web.HTTPNotFound(text=f"no task {task_id}")


async def show_task(request: web.Request) -> web.Response:
    summit, task = _task_or_404(request)
    rows = await summit.db.fetchall(
        "SELECT time, event_id, type, summary FROM timeline WHERE task_id = ? ORDER BY seq",
        (task.task_id,))
    planner = summit.planners[(task.repository, task.arch)]
    depends = sorted(planner.schedule.effective_deps(task.source))
    return web.json_response(store.task_json(
        task, critical_path=planner.critical_path(task.source), depends_on=depends,
        timeline=[dict(r) for r in rows]))


@admin
async def retry_task(request: web.Request) -> web.Response:
    summit, task = _task_or_404(request)
    try:
        new = await summit.retry(task.task_id)
    except CairnError as exc:
        return _error(409, str(exc))
    return web.json_response(store.task_json(new), status=201)


@admin
async def cancel_task(request: web.Request) -> web.Response:
    summit, task = _task_or_404(request)
    try:
        changed = await summit.cancel(task.task_id)
    except CairnError as exc:
        return _error(409, str(exc))
    return web.json_response(store.task_json(changed))


async def list_repositories(request: web.Request) -> web.Response:
    summit = request.app[SUMMIT_KEY]
    errors = await store.recipe_errors(summit.db)
    out = []
    for row in await store.repositories(summit.db):
        config = summit.repos.get(row.name)
        out.append({"name": row.name, "url": row.url, "branch": row.branch, "head": row.head,
                    "fetched": row.fetched, "error": row.error,
                    "arches": list(config.arches) if config else [],
                    "recipe_errors": [e for e in errors if e["repository"] == row.name]})
    return web.json_response({"repositories": out})


@admin
async def refresh_repository(request: web.Request) -> web.Response:
    summit = request.app[SUMMIT_KEY]
    try:
        summit.refresh(request.match_info["name"])
    except CairnError as exc:
        return _error(404, str(exc))
    return web.json_response({"status": "refreshing"}, status=202)


def add_routes(app: web.Application, summit: Summit, admin_token: str) -> None:
    app[SUMMIT_KEY] = summit
    app[TOKEN_KEY] = admin_token
    app.router.add_get("/api/v1/tasks", list_tasks)
    app.router.add_get("/api/v1/tasks/{task_id}", show_task)
    app.router.add_post("/api/v1/tasks/{task_id}/retry", retry_task)
    app.router.add_post("/api/v1/tasks/{task_id}/cancel", cancel_task)
    app.router.add_get("/api/v1/repositories", list_repositories)
    app.router.add_post("/api/v1/repositories/{name}/refresh", refresh_repository)
