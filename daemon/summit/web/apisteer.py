"""The API's levers (``/api/v1``): a task's priority, bulk cancel/retry/priority by filter
(a dry run by default: it lists what would change), pause and resume dispatch, drain and
enable a builder, point a repository at another build environment. Every call needs the
admin token (:func:`daemon.summit.web.api.admin`); bodies are JSON objects, an empty body
meaning no fields."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from aiohttp import web

from daemon.buildenv.errors import BuildEnvError
from daemon.buildenv.manifest import check_digest
from daemon.summit import queries
from daemon.summit.operations import BulkResult, Operations, TaskFilter
from daemon.summit.planning.levers import Levers
from daemon.summit.planning.states import TaskState
from daemon.summit.web.api import SUMMIT_KEY, Handler, admin, task_or_404
from daemon.summit.web.apiread import ApiError
from events.errors import CairnError

#: Priorities an operator may set (a bound keeps them in SQLite's and JSON's integers).
MAX_PRIORITY = 1_000_000
BULK_ACTIONS = ("cancel", "retry", "priority")
T = TypeVar("T")


async def body(request: web.Request) -> dict[str, Any]:
    """The JSON object the request carries ({} for an empty body); anything else is a 400."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ApiError(400, "the body must be a JSON object") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    return data


def priority_of(data: dict[str, Any]) -> int:
    """The body's priority: an integer (JSON's ``5.0`` is one too) within the bounds."""
    value = data.get("priority")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) \
            or not -MAX_PRIORITY <= value <= MAX_PRIORITY:
        raise ApiError(400, f"priority must be an integer between {-MAX_PRIORITY} and "
                            f"{MAX_PRIORITY}")
    return value


def _text(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 100:
        raise ApiError(400, f"{name} must be a string of at most 100 characters")
    return value


def filter_of(data: dict[str, Any]) -> TaskFilter:
    state = _text(data, "state")
    if state is not None and state not in set(TaskState):
        raise ApiError(400, f"unknown state {state!r}; one of {', '.join(TaskState)}")
    return TaskFilter(repository=_text(data, "repository"),
                      state=TaskState(state) if state else None,
                      source=_text(data, "source"))


def _refused(exc: CairnError) -> web.Response:
    return web.json_response({"error": str(exc)}, status=409)


@admin
async def set_priority(request: web.Request) -> web.Response:
    summit, task = task_or_404(request)
    priority = priority_of(await body(request))
    try:
        changed = await summit.operations.prioritise(task.task_id, priority)
    except CairnError as exc:
        return _refused(exc)
    return web.json_response(queries.task_json(changed))


@admin
async def bulk(request: web.Request) -> web.Response:
    action = request.match_info["action"]
    if action not in BULK_ACTIONS:
        raise ApiError(404, f"there is no bulk action {action!r}; one of "
                            f"{', '.join(BULK_ACTIONS)}")
    data = await body(request)
    which = filter_of(data)
    dry_run = data.get("dry_run", True)
    if not isinstance(dry_run, bool):
        raise ApiError(400, "dry_run must be true or false")
    operations = request.app[SUMMIT_KEY].operations
    result: BulkResult
    if action == "cancel":
        result = await operations.bulk_cancel(which, dry_run)
    elif action == "retry":
        result = await operations.bulk_retry(which, dry_run)
    else:
        result = await operations.bulk_prioritise(which, priority_of(data), dry_run)
    return web.json_response(result.to_json(queries.task_json))


async def show_dispatch(request: web.Request) -> web.Response:
    return web.json_response(request.app[SUMMIT_KEY].scheduler.levers.to_json())


async def _repository(request: web.Request) -> str | None:
    """The body's repository (none: the whole farm)."""
    return _text(await body(request), "repository")


async def _builder(request: web.Request) -> str:
    return request.match_info["name"]


def _lever(subject: Callable[[web.Request], Awaitable[T]],
           moves: Mapping[str, Callable[[Operations, T], Awaitable[Levers]]]) -> Handler:
    """A lever's two calls (``.../pause`` and ``.../resume``, ``.../drain`` and
    ``.../enable``): the path's last part says which move, ``subject`` what it moves; an
    unknown repository or builder is a 404. Answers every lever's position."""
    @admin
    async def move(request: web.Request) -> web.Response:
        target = await subject(request)
        operations = request.app[SUMMIT_KEY].operations
        try:
            levers = await moves[request.path.rsplit("/", 1)[-1]](operations, target)
        except CairnError as exc:
            raise ApiError(404, str(exc)) from None
        return web.json_response(levers.to_json())
    return move


pause_or_resume = _lever(_repository, {"pause": Operations.pause, "resume": Operations.resume})
drain_or_enable = _lever(_builder, {"drain": Operations.drain, "enable": Operations.enable})


@admin
async def set_environment(request: web.Request) -> web.Response:
    """``{"environment": DIGEST}`` (or ``null``: none) for a repository; re-plans."""
    summit, name = request.app[SUMMIT_KEY], request.match_info["name"]
    value = (await body(request)).get("environment", ...)
    if value is ... or not (value is None or isinstance(value, str)):
        raise ApiError(400, "environment must be a sha256 digest, or null for none")
    try:
        digest = None if value is None else check_digest(value)
    except BuildEnvError as exc:
        raise ApiError(400, str(exc)) from None
    if name not in summit.repos:
        raise ApiError(404, f"there is no repository {name!r}")
    try:
        changed = await summit.operations.use_environment(name, digest)
    except CairnError as exc:
        return _refused(exc)
    return web.json_response({"repository": name, "environment": digest,
                              "tasks": [queries.task_json(t) for t in changed]})


def add_steering(app: web.Application) -> None:
    """Mount the levers (after :func:`daemon.summit.web.api.add_routes`)."""
    post = app.router.add_post
    post("/api/v1/tasks/{task_id}/priority", set_priority)
    post("/api/v1/bulk/{action}", bulk)
    app.router.add_get("/api/v1/dispatch", show_dispatch)
    post("/api/v1/dispatch/pause", pause_or_resume)
    post("/api/v1/dispatch/resume", pause_or_resume)
    post("/api/v1/builders/{name}/drain", drain_or_enable)
    post("/api/v1/builders/{name}/enable", drain_or_enable)
    post("/api/v1/repositories/{name}/environment", set_environment)
