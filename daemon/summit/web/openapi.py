"""The OpenAPI 3.1 description of summit's API, written as data.

Why by hand rather than generated: the document is the API's contract for people and for
``schemathesis``; writing it beside the handlers (and testing the running server against it)
keeps it honest, while generating it from code would only describe whatever the code does.
"""

from __future__ import annotations

import copy
from typing import Any

from daemon.summit.planning.states import BlockKind, TaskReason, TaskState
from daemon.summit.planning.views import OPEN
from events.payloads import NAME_MAX_LENGTH, NAME_PATTERN

JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(kind: str) -> dict[str, Any]:
    return {"type": [kind, "null"]}


def _obj(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


def _list(key: str, item: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A paginated list answer: total, offset, limit and the items under ``key``."""
    return _obj(["total", "offset", "limit", key], total=_INT0, offset=_INT0,
                limit={"type": "integer", "minimum": 1},
                **{key: {"type": "array", "items": item}}, **extra)


_INT0 = {"type": "integer", "minimum": 0}
_STR = {"type": "string"}
_TIME = {"type": "number", "description": "seconds since the epoch"}

#: What a build consumed (``null`` for builds reported without usage).
_USAGE: dict[str, Any] = {
    "cpu_s": {"type": ["number", "null"], "description": "CPU seconds (user + system)"},
    "max_rss_kb": {"type": ["integer", "null"], "description": "peak resident memory, KiB"},
    "output_bytes": {"type": ["integer", "null"], "description": "size of what it made"},
    "log_bytes": {"type": ["integer", "null"], "description": "size of its log"},
    "disk_bytes": {"type": ["integer", "null"], "description": "the disk it took: its build "
                   "tree's peak size (null: reported by a builder before build-done v3)"},
}

SCHEMAS: dict[str, Any] = {
    "Error": _obj(["error"], error={"type": "string", "description": "what went wrong, "
                                    "for a person"}),
    "BlockReason": _obj(
        ["kind"], kind={"enum": list(BlockKind)}, source=_nullable("string"),
        task_id=_nullable("integer"), members={"type": "array", "items": _STR},
        name=_nullable("string")),
    "Blocker": _obj(["kind", "text", "tasks", "parts"], kind={"enum": list(BlockKind)},
                    text={"type": "string", "description": "the reason in words"},
                    tasks={"type": "array", "items": {"type": "integer"}},
                    parts={"type": "array", "description": "the text in pieces; a piece "
                           "with a task names (and may link to) that task",
                           "items": _obj(["text", "task"], text=_STR,
                                         task=_nullable("integer"))}),
    "Task": _obj(
        ["id", "source", "version", "release", "build_release", "arch", "repository",
         "commit", "recipe_path", "reason", "state", "blocked_by", "attempt", "builder",
         "failure"],
        id={"type": "integer"}, source=_STR, version=_STR, release=_INT0,
        build_release={"type": "integer", "minimum": 1}, arch=_STR, repository=_STR,
        commit=_STR, recipe_path=_STR, reason={"enum": list(TaskReason)},
        state={"enum": list(TaskState)},
        blocked_by={"type": "array", "items": _ref("BlockReason")},
        attempt={"type": "integer", "minimum": 1}, builder=_nullable("string"),
        failure=_nullable("string"), priority={"type": "integer"},
        waiting={"type": ["string", "null"], "description": "why a ready task waits "
                 "(paused, no builder with what it needs); null: only for a free slot"},
        retry_at={"type": ["number", "null"], "description": "a ready task retried after an "
                  "infrastructure failure is not assigned before this time (epoch seconds)"},
        withdrawn={"type": "integer", "minimum": 0, "description": "attempts whose "
                   "assignment was withdrawn before the builder claimed it (a task ahead in "
                   "the queue took the slot); they do not count towards max_attempts"}),
    "TaskRef": _obj(["source", "id", "state"], source=_STR, id=_nullable("integer"),
                    state=_nullable("string")),
    "TimelineEntry": _obj(["seq", "time", "type", "summary"], seq={"type": "integer"},
                          time=_TIME, event_id=_nullable("string"), type=_STR, summary=_STR),
    "Build": _obj(["builder", "outcome", "log_url", "duration_s", "time"], builder=_STR,
                  outcome=_STR, reason=_nullable("string"), log_url=_nullable("string"),
                  duration_s={"type": "number"}, time=_TIME, **_USAGE,
                  environment={"type": ["string", "null"], "description":
                               "the build environment's sha256 digest; null: the builder "
                               "host's own system (not hermetic)"}),
    "Counts": {"type": "object", "required": list(TaskState),
               "properties": {s: _INT0 for s in TaskState}, "additionalProperties": False},
    "Repository": _obj(
        ["name", "url", "branch", "head", "fetched", "error", "arches", "planned", "recipes",
         "recipe_errors", "environment"],
        name=_STR, url=_STR, branch=_STR,
        environment={"type": ["string", "null"], "description": "the build environment "
                     "(sha256) its builds run in; null: none named, the builders decide"},
        head={"type": ["string", "null"], "description": "the last commit seen on the branch"},
        fetched={"type": ["number", "null"]}, error=_nullable("string"),
        arches={"type": "array", "items": _STR},
        planned={"type": "object", "additionalProperties": _STR,
                 "description": "arch → the commit its plan is based on"},
        recipes=_INT0,
        recipe_errors={"type": "array", "items": _obj(
            ["repository", "path", "file", "message"], repository=_STR, path=_STR,
            file=_STR, line=_nullable("integer"), message=_STR)}),
    "Recipe": _obj(
        ["name", "version", "release", "path", "repository", "arch", "build_deps",
         "provides", "published_release", "latest_task"],
        name=_STR, version=_STR, release=_INT0, path=_STR, summary=_STR, repository=_STR,
        arch=_STR, build_deps={"type": "array", "items": _STR},
        provides={"type": "array", "items": _STR}, published_release=_nullable("integer"),
        latest_task={"oneOf": [{"type": "null"}, _obj(
            ["id", "state", "release"], id={"type": "integer"}, state={"enum": list(TaskState)},
            release=_INT0)]}),
    "Builder": _obj(
        ["builder", "state", "tasks"], builder=_STR, arch=_nullable("string"),
        state={"type": "string", "description": "online, building, draining or offline"},
        tasks={"type": "array", "items": _obj(["id"], id={}, source=_nullable("string"),
                                              state=_nullable("string"))},
        slots={}, time={}),
    "Event": _obj(["seq", "time", "task_id", "type", "summary", "source"],
                  seq={"type": "integer"}, time=_TIME, task_id={"type": "integer"},
                  event_id=_nullable("string"), type=_STR, summary=_STR,
                  source=_nullable("string")),
    "Channel": _obj(["channel", "arch", "index_url", "generation", "signed", "error"],
                    channel=_STR, arch=_STR, index_url=_STR,
                    generation=_nullable("integer"),
                    signed={"type": ["integer", "null"],
                            "description": "when vessel signed the index (epoch seconds)"},
                    error=_nullable("string")),
    "Generation": _obj(
        ["channel", "arch", "generation", "task_id", "source", "release", "build_release",
         "packages", "time"],
        channel=_STR, arch=_STR, generation={"type": "integer"}, task_id={"type": "integer"},
        source=_STR, release=_INT0, build_release={"type": "integer"},
        packages={"type": "array", "items": _STR}, time=_TIME),
}
SCHEMAS["HistoryEntry"] = {"allOf": [_ref("Build"), _obj(
    ["task_id", "attempt", "repository", "arch", "release", "version"],
    task_id={"type": "integer"}, attempt={"type": "integer", "minimum": 1},
    repository=_STR, arch=_STR, release=_INT0, version=_STR)]}
SCHEMAS["TaskDetail"] = {"allOf": [_ref("Task"), _obj(
    ["critical_path", "depends_on", "dependencies", "dependents", "blockers", "timeline",
     "builds", "history"],
    history={"type": "array", "items": _ref("HistoryEntry"),
             "description": "the latest builds of the task's source (this repository and "
                            "arch), newest first"},
    critical_path=_INT0, depends_on={"type": "array", "items": _STR},
    dependencies={"type": "array", "items": _ref("TaskRef")},
    dependents={"type": "array", "items": _ref("TaskRef")},
    blockers={"type": "array", "items": _ref("Blocker")},
    timeline={"type": "array", "items": _ref("TimelineEntry")},
    builds={"type": "array", "items": _ref("Build")})]}
SCHEMAS["Log"] = _obj(
    ["task_id", "state", "lines", "first_seq", "next_seq", "truncated", "live", "log_urls"],
    task_id={"type": "integer"}, state={"enum": list(TaskState)},
    lines={"type": "array", "items": _obj(["seq", "text"], seq=_INT0, text=_STR)},
    first_seq=_INT0, next_seq=_INT0,
    truncated={"type": "boolean", "description": "older lines than asked were dropped"},
    live={"type": "boolean"}, log_urls={"type": "array", "items": _STR})
SCHEMAS["RootCause"] = _obj(
    ["key", "kind", "repository", "arch", "subject", "members", "task_id", "detail", "text",
     "count"],
    key={"type": "string", "description": "names it in /api/v1/tasks?cause="},
    kind={"enum": ["cycle", "failed", "unresolvable", "missing", "paused", "no-builder"]},
    repository=_STR, arch=_STR, subject=_STR, members={"type": "array", "items": _STR},
    task_id=_nullable("integer"), detail=_STR, text=_STR,
    count={"type": "integer", "minimum": 1, "description": "open tasks it holds back"})
_GRAPH: dict[str, Any] = {
    "nodes": {"type": "array", "items": _obj(
        ["id", "source", "state", "repository", "arch", "wave", "critical_path", "stuck",
         "column", "waits", "waited_by", "expected_start", "expected_finish"],
        id={"type": "integer"}, source=_STR, state={"enum": list(TaskState)},
        repository=_STR, arch=_STR, wave=_INT0, critical_path=_INT0,
        stuck={"type": "boolean", "description": "cannot start as things stand"},
        column={"type": "string", "description": "building, publishing, wave-N or stuck"},
        waits={**_INT0, "description": "open tasks it waits for"},
        waited_by={**_INT0, "description": "open tasks waiting for it"},
        expected_start=_nullable("number"), expected_finish=_nullable("number"))},
    "edges": {"type": "array", "description": "from waits for to, among these nodes only",
              "items": _obj(["from", "to"], **{"from": {"type": "integer"},
                                               "to": {"type": "integer"}})}}
SCHEMAS["AsOf"] = _obj(
    ["time", "age_s", "up_to_date", "compute_s"],
    time={**_TIME, "description": "when the state shown was read from the planners"},
    age_s={"type": "number", "minimum": 0}, compute_s={"type": "number", "minimum": 0},
    up_to_date={"type": "boolean", "description": "false: decisions were made since, and a "
                                                  "refresh is taking them in"})
SCHEMAS["Queue"] = _obj(
    ["total", "offset", "limit", "open", "nodes", "edges", "columns", "focus",
     "expected_finish", "as_of"],
    total={**_INT0, "description": "open tasks the search finds"}, offset=_INT0,
    limit={"type": "integer", "minimum": 1}, open={**_INT0, "description": "open tasks"},
    **_GRAPH,
    columns={"type": "array", "description": "what the search finds (the column aside) "
                                             "by column",
             "items": _obj(["key", "title", "count", "sample", "states"], key=_STR,
                           title=_STR, count=_INT0, sample={"type": "array", "items": _STR},
                           states={"type": "object",
                                   "additionalProperties": {"type": "integer"}})},
    focus={"oneOf": [{"type": "null"}, _obj(
        ["id", "ancestors", "descendants", "cut", "nodes", "edges"], id={"type": "integer"},
        ancestors=_INT0, descendants=_INT0,
        cut={**_INT0, "description": "related tasks left out (the farthest)"}, **_GRAPH)]},
    expected_finish=_nullable("number"), as_of=_ref("AsOf"))


def _param(name: str, schema: dict[str, Any], description: str,
           where: str = "query") -> dict[str, Any]:
    return {"name": name, "in": where, "required": where == "path", "schema": schema,
            "description": description}


_TEXT = {"type": "string", "maxLength": 100}
LIMIT = _param("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "page size")
OFFSET = _param("offset", {"type": "integer", "minimum": 0, "maximum": 10**9},
                "items to skip")
TASK_ID = _param("task_id", {"type": "integer", "minimum": 0}, "a task id", "path")
REPO_NAME = _param("name", {"type": "string", "maxLength": 100}, "a repository's name",
                   "path")
REPOSITORY = _param("repository", _TEXT, "only this repository")
ARCH = _param("arch", _TEXT, "only this architecture")


def _answer(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    if schema is None:
        schema = _ref("Error")
    return {"description": description, "content": {JSON: {"schema": schema}}}


BAD = {"400": _answer("a query parameter is invalid (the message names it)")}
MISSING = {"404": _answer("no such id")}


def _webhook(forge: str, auth: str) -> dict[str, Any]:
    """A forge's push webhook: authenticated by the forge's own scheme, never by the token."""
    status = _obj(["status"], status=_STR, reason=_STR)
    return {"post": {
        "summary": f"{forge} push webhook ({auth}); pushes to a watched branch are planned "
                   "at once",
        "requestBody": {"required": True, "content": {JSON: {"schema": {"type": "object"}}}},
        "responses": {
            "200": _answer("ping answered, or a delivery already handled", status),
            "202": _answer("accepted, or ignored (unknown repository, other branch, tag)",
                           status),
            "400": _answer("the body is not a JSON object"),
            "401": _answer("bad or missing signature for that repository"),
            "413": _answer("the body exceeds the limit"),
            "503": _answer("summit could not record the push; the forge should redeliver")}}}


def _get(summary: str, schema: dict[str, Any], params: list[dict[str, Any]] | None = None,
         errors: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"get": {"summary": summary, "parameters": params or [],
                    "responses": {"200": _answer("OK", schema), **(errors or {})}}}


def _admin(summary: str, status: str, schema: dict[str, Any],
           params: list[dict[str, Any]]) -> dict[str, Any]:
    return {"post": {"summary": summary, "parameters": params,
                     "security": [{"admin": []}],
                     "responses": {status: _answer("done", schema),
                                   "401": _answer("the admin token is missing or wrong"),
                                   **MISSING,
                                   "409": _answer("the task is not in a state that allows it")}}}


_SSE = {"description": "a stream of server-sent events",
        "content": {"text/event-stream": {"schema": {"type": "string"}}}}

def _lever(summary: str, body: dict[str, Any], schema: dict[str, Any],
           params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A changing call with a JSON body (the levers); the body is optional unless it has
    required fields."""
    op = _admin(summary, "200", schema, params or [])
    op["post"]["requestBody"] = {"required": bool(body.get("required")),
                                 "content": {JSON: {"schema": body}}}
    op["post"]["responses"]["400"] = _answer("the body is not what the call takes")
    return op


_PRIORITY = {"type": "integer", "minimum": -1_000_000, "maximum": 1_000_000}
_LEVERS = _obj(["paused", "paused_repositories", "drained"], paused={"type": "boolean"},
               paused_repositories={"type": "array", "items": _STR},
               drained={"type": "array", "items": _STR})
_FILTER = {"repository": {"type": ["string", "null"], "maxLength": 100},
           "state": {"enum": [*TaskState, None]},
           "source": {"type": ["string", "null"], "maxLength": 100,
                      "description": "shell-style pattern over source names"},
           "dry_run": {"type": "boolean", "default": True,
                       "description": "only list what would change (the default)"}}
_BULK = _obj(["dry_run", "matched", "done", "skipped"], dry_run={"type": "boolean"},
             matched={"type": "array", "items": _ref("Task")},
             done={"type": "array", "items": _ref("Task")},
             skipped={"type": "array", "items": _obj(["task", "error"], task=_ref("Task"),
                                                     error=_STR)})
BUILDER_NAME = _param("name", {"type": "string", "maxLength": 100}, "a builder's name", "path")
STEER_PATHS: dict[str, Any] = {
    "/api/v1/tasks/{task_id}/priority": _lever(
        "set the priority of a task not yet building (higher goes first)",
        _obj(["priority"], priority=_PRIORITY), _ref("Task"), [TASK_ID]),
    **{f"/api/v1/bulk/{action}": _lever(
        f"{action} every task matching the filter (a dry run unless dry_run is false)",
        {"type": "object", "properties": {
            **_FILTER, **({"priority": _PRIORITY} if action == "priority" else {})},
         **({"required": ["priority"]} if action == "priority" else {})}, _BULK)
       for action in ("cancel", "retry", "priority")},
    "/api/v1/dispatch": _get("whether dispatch is paused, and which builders are drained",
                             _LEVERS),
    **{f"/api/v1/dispatch/{verb}": _lever(
        f"{verb} dispatch for the farm, or for one repository",
        _obj([], repository={"type": ["string", "null"], "maxLength": 100}), _LEVERS)
       for verb in ("pause", "resume")},
    "/api/v1/repositories/{name}/environment": _lever(
        "point a repository at another build environment (null: none); what it has built "
        "is built again in it, reason \"build environment changed\"",
        _obj(["environment"], environment={"type": ["string", "null"], "maxLength": 71}),
        _obj(["repository", "environment", "tasks"], repository=_STR,
             environment=_nullable("string"), tasks={"type": "array", "items": _ref("Task")}),
        [REPO_NAME]),
    **{f"/api/v1/builders/{{name}}/{verb}": _lever(
        f"{verb} a builder (a drained builder finishes its builds and gets nothing new)",
        {"type": "object"}, _LEVERS, [BUILDER_NAME])
       for verb in ("drain", "enable")},
}

PATHS: dict[str, Any] = {
    "/api/v1": _get("where things are", _obj(["openapi"], name=_STR, openapi=_STR,
                                             dashboard=_STR)),
    "/api/v1/openapi.json": _get("this document", {"type": "object"}),
    "/api/v1/overview": _get(
        "counts by state, builders, recent events, what limits progress, and blocked tasks "
        "by root cause", _obj(
            ["counts", "builders", "recent", "open", "limit", "root_causes", "queued",
             "as_of"],
            counts=_ref("Counts"), builders={"type": "array", "items": _ref("Builder")},
            recent={"type": "array", "items": _ref("Event")}, open=_INT0,
            limit=_obj(["kind", "text"], kind=_STR, text=_STR),
            expected_finish={"type": ["number", "null"], "description": "when the whole "
                             "open queue is expected to be built (epoch seconds; null: no "
                             "estimate)"},
            root_causes={"type": "array", "items": _ref("RootCause")},
            as_of=_ref("AsOf"),
            queued={"type": "integer", "minimum": 0,
                    "description": "blocked tasks that only wait for builds that can run"})),
    "/api/v1/tasks": _get(
        "tasks, newest first", _list("tasks", _ref("Task"), counts=_ref("Counts")),
        [_param("state", {"enum": list(TaskState)}, "only tasks in this state"),
         _param("source", _TEXT, "only this source"),
         _param("q", _TEXT, "text in the source, version, builder or failure"),
         _param("cause", _TEXT, "only the tasks this root cause holds back (its key)"),
         REPOSITORY, ARCH, LIMIT, OFFSET], {**BAD, "404": _answer("no such root cause now")}),
    "/api/v1/tasks/{task_id}": _get(
        "a task with its dependencies, dependents, blockers, timeline and builds",
        _ref("TaskDetail"), [TASK_ID], MISSING),
    "/api/v1/tasks/{task_id}/log": _get(
        "the kept lines of the task's live log, and the URLs of its full logs", _ref("Log"),
        [TASK_ID, _param("after", {"type": "integer", "minimum": 0, "maximum": 10**12},
                         "first line number wanted")], {**BAD, **MISSING}),
    "/api/v1/sources/{source}/history": _get(
        "every build of a source, newest first, with its outcome and what it consumed",
        _obj(["source", "builds"], source=_STR,
             builds={"type": "array", "items": _ref("HistoryEntry")}),
        [{"name": "source", "in": "path", "required": True,
          "schema": {"type": "string", "pattern": NAME_PATTERN, "maxLength": NAME_MAX_LENGTH}},
         REPOSITORY, ARCH, _param("limit", {"type": "integer", "minimum": 1, "maximum": 1000},
                                  "how many builds (50)")], BAD),
    "/api/v1/tasks/{task_id}/log/stream": {"get": {
        "summary": "the task's log lines, live, and task changes (SSE events `log`, "
                   "`task`, `truncated`; resumes from Last-Event-ID)",
        "parameters": [TASK_ID], "responses": {"200": _SSE, **MISSING}}},
    "/api/v1/tasks/{task_id}/retry": _admin("build a failed task again", "201",
                                            _ref("Task"), [TASK_ID]),
    "/api/v1/tasks/{task_id}/cancel": _admin("cancel a task (its build is stopped)", "200",
                                             _ref("Task"), [TASK_ID]),
    "/api/v1/repositories": _get("watched recipe repositories with their last commit and "
                                 "recipe errors", _list("repositories", _ref("Repository")),
                                 [LIMIT, OFFSET], BAD),
    "/api/v1/repositories/{name}": _get("one repository", _ref("Repository"), [REPO_NAME],
                                        MISSING),
    "/api/v1/repositories/{name}/refresh": {"post": {
        "summary": "fetch the repository now", "parameters": [REPO_NAME],
        "security": [{"admin": []}],
        "responses": {"202": _answer("fetching", _obj(["status"], status=_STR)),
                      "401": _answer("the admin token is missing or wrong"), **MISSING}}},
    "/api/v1/recipes": _get("recipes of the planned trees", _list("recipes", _ref("Recipe")),
                            [REPOSITORY, ARCH, _param("q", _TEXT, "text in name or summary"),
                             LIMIT, OFFSET], BAD),
    "/api/v1/builders": _get("builders, from their telemetry presence", _obj(
        ["builders"], builders={"type": "array", "items": _ref("Builder")})),
    "/api/v1/queue": _get(
        "one page of the open queue (in column order, then by source), the edges among "
        "that page's tasks, the columns, and one task's ancestors and descendants",
        _ref("Queue"),
        [_param("state", {"enum": [s for s in TaskState if s in OPEN]}, "only this state"),
         _param("q", _TEXT, "a part of the source's name, or a pattern (lib*)"),
         _param("column", _TEXT, "only this column (building, publishing, wave-N, stuck)"),
         _param("focus", {"type": "integer", "minimum": 0, "maximum": 10**12},
                "a task whose ancestors and descendants to include"),
         REPOSITORY, ARCH, LIMIT, OFFSET], BAD),
    "/api/v1/events": _get("task events (state changes), newest first",
                           _list("events", _ref("Event")),
                           [_param("task_id", {"type": "integer", "minimum": 0,
                                               "maximum": 10**12}, "only this task"),
                            LIMIT, OFFSET], BAD),
    "/api/v1/channels": _get("what vessel serves now in each channel", _obj(
        ["repository_url", "build_channel", "channels"],
        repository_url=_nullable("string"), build_channel=_STR,
        channels={"type": "array", "items": _ref("Channel")})),
    "/api/v1/generations": _get("generations summit saw published, newest first",
                                _list("generations", _ref("Generation")),
                                [_param("channel", _TEXT, "only this channel"), ARCH, LIMIT,
                                 OFFSET], BAD),
    **{f"/api/v1/webhooks/{forge}": _webhook(forge, auth)
       for forge, auth in (("github", "X-Hub-Signature-256: sha256=HMAC-SHA256 of the body"),
                           ("gitea", "X-Gitea-Signature or X-Forgejo-Signature: hex "
                                     "HMAC-SHA256 of the body"),
                           ("gitlab", "X-Gitlab-Token: the shared secret"))},
    **STEER_PATHS,
    "/api/v1/stream": {"get": {
        "summary": "live updates for the dashboard (SSE events `task`, `counts`, `builder`)",
        "responses": {"200": _SSE}}},
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "cairn summit", "version": "1",
             "description": "Summit's scheduler state: tasks, recipes, builders, the queue, "
                            "the repository's channels. Errors are `{\"error\": ...}`."},
    "paths": PATHS,
    "components": {"schemas": SCHEMAS, "securitySchemes": {
        "admin": {"type": "http", "scheme": "bearer",
                  "description": "summit's admin token (STATE/summit/admin.token)"}}},
}


def document() -> dict[str, Any]:
    """A copy of the document (callers may not change the module's)."""
    return copy.deepcopy(DOCUMENT)
