"""Summit's reads for the API, the dashboard, the live streams and the CLI: what happened to
a task, its builds, the timeline, the generations seen, the repositories and their recipe
errors. They change nothing; the scheduler's own state (what it loads at start and writes
with every decision) is in :mod:`daemon.summit.store`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from daemon.summit.planning.states import Task
from events.sqlite import Database


def task_json(task: Task, **extra: Any) -> dict[str, Any]:
    """A task as the API and ``cairn tasks`` show it."""
    return {
        "id": task.task_id, "source": task.source, "version": task.version,
        "release": task.release, "build_release": task.build_release, "arch": task.arch,
        "repository": task.repository, "commit": task.commit, "recipe_path": task.recipe_path,
        "reason": str(task.reason), "state": str(task.state),
        "blocked_by": [b.to_json() for b in task.blocked_by], "attempt": task.attempt,
        "builder": task.builder, "failure": task.failure, "priority": task.priority,
        "assigned_at": task.assigned_at, "retry_at": task.retry_at,
        "withdrawn": task.withdrawn, **extra,
    }


@dataclass(frozen=True)
class RepositoryRow:
    name: str
    url: str
    branch: str
    head: str | None
    fetched: float | None
    error: str | None


async def repositories(db: Database) -> list[RepositoryRow]:
    rows = await db.fetchall("SELECT * FROM repositories ORDER BY name")
    return [RepositoryRow(r["name"], r["url"], r["branch"], r["head"], r["fetched"], r["error"])
            for r in rows]


async def recipe_errors(db: Database, repository: str | None = None) -> list[dict[str, Any]]:
    sql = "SELECT * FROM recipe_errors"
    params: tuple[str, ...] = ()
    if repository is not None:
        sql += " WHERE repository = ?"
        params = (repository,)
    return [dict(r) for r in await db.fetchall(sql + " ORDER BY repository, file", params)]


async def source_history(db: Database, source: str, repository: str | None = None,
                         arch: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """Every build of ``source`` (of one repository and arch, or all), newest first: when,
    which task and attempt, where, how it ended and what it consumed."""
    rows = await db.fetchall(
        "SELECT builds.task_id, builds.attempt, tasks.repository, tasks.arch, tasks.release,"
        " tasks.version, builds.builder, builds.outcome, builds.reason, builds.duration_s,"
        " builds.environment,"
        " builds.cpu_s, builds.max_rss_kb, builds.output_bytes, builds.log_bytes,"
        " builds.disk_bytes,"
        " builds.log_url, builds.time FROM builds JOIN tasks USING (task_id)"
        " WHERE tasks.source = ? AND (? IS NULL OR tasks.repository = ?)"
        " AND (? IS NULL OR tasks.arch = ?) ORDER BY builds.seq DESC LIMIT ?",
        (source, repository, repository, arch, arch, limit))
    return [dict(r) for r in rows]


# -- reads for the API, the dashboard and the live streams ---------------------------------
async def task_timeline(db: Database, task_id: int) -> list[dict[str, Any]]:
    """What happened to one task, oldest first."""
    rows = await db.fetchall("SELECT seq, time, event_id, type, summary FROM timeline "
                             "WHERE task_id = ? ORDER BY seq", (task_id,))
    return [dict(r) for r in rows]


async def task_builds(db: Database, task_id: int) -> list[dict[str, Any]]:
    """Every build report of one task, oldest first."""
    rows = await db.fetchall("SELECT attempt, builder, outcome, reason, log_url, duration_s,"
                             " time, environment, cpu_s, max_rss_kb, output_bytes, log_bytes"
                             " FROM builds WHERE task_id = ? ORDER BY seq", (task_id,))
    return [dict(r) for r in rows]


async def log_urls(db: Database, task_id: int) -> list[str]:
    """Where the full logs of a task's builds are, oldest first."""
    rows = await db.fetchall("SELECT log_url FROM builds WHERE task_id = ? AND log_url IS NOT "
                             "NULL ORDER BY seq", (task_id,))
    return [str(r["log_url"]) for r in rows]


async def timeline_page(db: Database, task_id: int | None, limit: int,
                        offset: int) -> tuple[int, list[dict[str, Any]]]:
    """Timeline entries (of one task, or all), newest first, with each task's source."""
    total = await db.fetchone(
        "SELECT count(*) AS n FROM timeline WHERE ? IS NULL OR task_id = ?", (task_id, task_id))
    rows = await db.fetchall(
        "SELECT timeline.seq, timeline.time, timeline.task_id, timeline.event_id, "
        "timeline.type, timeline.summary, tasks.source FROM timeline "
        "LEFT JOIN tasks USING (task_id) WHERE ? IS NULL OR timeline.task_id = ? "
        "ORDER BY seq DESC LIMIT ? OFFSET ?", (task_id, task_id, limit, offset))
    return (int(total["n"]) if total else 0), [dict(r) for r in rows]


async def timeline_groups(db: Database, limit: int,
                          window: int = 2000) -> list[dict[str, Any]]:
    """The newest timeline entries with those one event wrote in one state as one entry
    (``count`` of them, the first ``sources``): planning a tree writes one entry per task,
    and a person wants to read "613 tasks blocked", not 613 lines. Newest first; the
    ``window`` newest entries are grouped, and a group that reaches past it is counted in
    full."""
    rows = await db.fetchall(
        "SELECT t.seq, t.time, t.task_id, t.event_id, t.type, t.summary, tasks.source FROM "
        "(SELECT * FROM timeline ORDER BY seq DESC LIMIT ?) AS t LEFT JOIN tasks "
        "USING (task_id) ORDER BY t.seq DESC", (window,))
    groups: dict[tuple[str, str | int], dict[str, Any]] = {}
    for row in rows:
        key = (row["type"], row["event_id"] or row["seq"])
        group = groups.get(key)
        if group is None:
            if len(groups) < limit:
                groups[key] = {**dict(row), "count": 1, "sources": [row["source"]]}
            continue
        group["count"] += 1
        if len(group["sources"]) < 3:
            group["sources"].append(row["source"])
    if len(rows) == window:
        for group in groups.values():
            if group["event_id"] is not None and group["count"] > 1:
                found = await db.fetchone("SELECT count(*) AS n FROM timeline WHERE "
                                          "event_id = ? AND type = ?",
                                          (group["event_id"], group["type"]))
                group["count"] = int(found["n"]) if found else group["count"]
    return sorted(groups.values(), key=lambda g: -int(g["seq"]))


async def timeline_last_seq(db: Database) -> int:
    row = await db.fetchone("SELECT max(seq) AS seq FROM timeline")
    return int(row["seq"] or 0) if row is not None else 0


async def timeline_since(db: Database, seq: int, limit: int = 1000) -> list[dict[str, Any]]:
    """Timeline entries written after ``seq``, oldest first."""
    rows = await db.fetchall("SELECT seq, task_id, time, event_id, type, summary FROM timeline "
                             "WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit))
    return [dict(r) for r in rows]


async def planned_commits(db: Database) -> dict[str, dict[str, str]]:
    """repository → arch → the commit its planner has applied."""
    out: dict[str, dict[str, str]] = {}
    for row in await db.fetchall("SELECT repository, arch, commit_id FROM planned"):
        out.setdefault(row["repository"], {})[row["arch"]] = row["commit_id"]
    return out


async def generations_page(db: Database, channel: str | None, arch: str | None, limit: int,
                           offset: int) -> tuple[int, list[dict[str, Any]]]:
    """Generations summit saw published (from package-published), newest first."""
    params = (channel, channel, arch, arch)
    total = await db.fetchone(
        "SELECT count(*) AS n FROM generations "
        "WHERE (? IS NULL OR channel = ?) AND (? IS NULL OR arch = ?)", params)
    rows = await db.fetchall(
        "SELECT channel, arch, generation, task_id, source, release, build_release, packages, "
        "time FROM generations WHERE (? IS NULL OR channel = ?) AND (? IS NULL OR arch = ?) "
        "ORDER BY seq DESC LIMIT ? OFFSET ?", (*params, limit, offset))
    out = []
    for row in rows:
        item = dict(row)
        item["packages"] = json.loads(item["packages"])
        out.append(item)
    return (int(total["n"]) if total else 0), out
