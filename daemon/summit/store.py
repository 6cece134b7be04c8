"""Summit's SQLite state as the scheduler and the watcher keep it: tasks, what the repository
has published, the repositories it watches and the commit each planner has applied, recipe
errors, each task's timeline, builds, builders, levers and environments.

The planner keeps the same facts in memory; this store is what survives a restart (the
planner is rebuilt from it). The schema is in :mod:`daemon.summit.schema`; what the API and
the dashboard read, changing nothing, in :mod:`daemon.summit.queries`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from typing import Any

from daemon.summit.planning.fleet import Builder, BuilderStatus
from daemon.summit.planning.graph import PublishedIndex
from daemon.summit.planning.levers import Levers
from daemon.summit.planning.recipe import BrokenRecipe
from daemon.summit.planning.states import BlockKind, BlockReason, Task, TaskReason, TaskState
from events.payloads import BuildDone, UsageV3
from events.sqlite import Connection, Database, Row


def _block_from_json(data: dict[str, Any]) -> BlockReason:
    return BlockReason(kind=BlockKind(data["kind"]), source=data.get("source"),
                       task_id=data.get("task_id"), members=tuple(data.get("members", ())),
                       name=data.get("name"))


def task_from_row(row: Row) -> Task:
    return Task(
        task_id=row["task_id"], source=row["source"], version=row["version"],
        release=row["release"], recipe_path=row["recipe_path"], commit=row["commit_id"],
        repository=row["repository"], arch=row["arch"], reason=TaskReason(row["reason"]),
        state=TaskState(row["state"]),
        blocked_by=tuple(_block_from_json(b) for b in json.loads(row["blocked_by"])),
        attempt=row["attempt"], builder=row["builder"], build_release=row["build_release"],
        failure=row["failure"], priority=row["priority"], assigned_at=row["assigned_at"],
        retry_at=row["retry_at"], withdrawn=row["withdrawn"],
    )


async def save_tasks(conn: Connection, tasks: Iterable[Task]) -> None:
    now = time.time()
    await conn.executemany(
        "INSERT INTO tasks (task_id, repository, arch, source, version, release, build_release,"
        " recipe_path, commit_id, reason, state, blocked_by, attempt, builder, failure, priority,"
        " assigned_at, retry_at, withdrawn, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?,"
        " ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (task_id) DO UPDATE SET"
        " state = excluded.state,"
        " blocked_by = excluded.blocked_by, attempt = excluded.attempt,"
        " builder = excluded.builder, failure = excluded.failure,"
        " build_release = excluded.build_release, priority = excluded.priority,"
        " assigned_at = excluded.assigned_at, retry_at = excluded.retry_at,"
        " withdrawn = excluded.withdrawn,"
        " commit_id = excluded.commit_id,"
        " version = excluded.version, recipe_path = excluded.recipe_path,"
        " updated = excluded.updated",
        [(t.task_id, t.repository, t.arch, t.source, t.version, t.release, t.build_release,
          t.recipe_path, t.commit, str(t.reason), str(t.state),
          json.dumps([b.to_json() for b in t.blocked_by]), t.attempt, t.builder, t.failure,
          t.priority, t.assigned_at, t.retry_at, t.withdrawn, now, now) for t in tasks],
    )


async def load_tasks(db: Database) -> list[Task]:
    return [task_from_row(r) for r in await db.fetchall("SELECT * FROM tasks ORDER BY task_id")]


async def add_timeline(conn: Connection, entries: Sequence[tuple[int, str | None, str, str]]
                       ) -> None:
    """(task_id, event_id, type, summary) rows: what happened to each task, in order."""
    now = time.time()
    await conn.executemany(
        "INSERT INTO timeline (task_id, time, event_id, type, summary) VALUES (?, ?, ?, ?, ?)",
        [(task_id, now, event_id, kind, summary) for task_id, event_id, kind, summary in entries])


async def record_publication(conn: Connection, channel: str, arch: str, source: str,
                             release: int, names: Iterable[str]) -> None:
    await conn.execute(
        "INSERT INTO published (channel, arch, source, release) VALUES (?, ?, ?, ?) "
        "ON CONFLICT DO UPDATE SET release = max(release, excluded.release)",
        (channel, arch, source, release))
    await conn.executemany(
        "INSERT OR IGNORE INTO providers (channel, arch, name, source) VALUES (?, ?, ?, ?)",
        [(channel, arch, name, source) for name in names])


async def load_published(db: Database, channel: str, arch: str) -> PublishedIndex:
    index = PublishedIndex()
    names: dict[str, list[str]] = {}
    for row in await db.fetchall("SELECT name, source FROM providers WHERE channel = ? AND "
                                 "arch = ?", (channel, arch)):
        names.setdefault(row["source"], []).append(row["name"])
    for row in await db.fetchall("SELECT source, release FROM published WHERE channel = ? AND"
                                 " arch = ?", (channel, arch)):
        index.add(row["source"], row["release"], names.get(row["source"], ()))
    return index


async def has_publications(db: Database, channel: str, arch: str) -> bool:
    row = await db.fetchone("SELECT 1 FROM published WHERE channel = ? AND arch = ? LIMIT 1",
                            (channel, arch))
    return row is not None


async def upsert_repository(conn: Connection, name: str, url: str, branch: str) -> None:
    await conn.execute(
        "INSERT INTO repositories (name, url, branch) VALUES (?, ?, ?) ON CONFLICT (name) "
        "DO UPDATE SET url = excluded.url, branch = excluded.branch", (name, url, branch))


async def set_head(conn: Connection, name: str, head: str | None, error: str | None) -> None:
    if head is None:
        await conn.execute("UPDATE repositories SET error = ?, fetched = ? WHERE name = ?",
                           (error, time.time(), name))
    else:
        await conn.execute("UPDATE repositories SET head = ?, error = NULL, fetched = ? "
                           "WHERE name = ?", (head, time.time(), name))


async def planned_commit(db: Database, repository: str, arch: str) -> str | None:
    row = await db.fetchone("SELECT commit_id FROM planned WHERE repository = ? AND arch = ?",
                            (repository, arch))
    return None if row is None else str(row["commit_id"])


async def set_planned(conn: Connection, repository: str, arch: str, commit: str) -> None:
    await conn.execute("INSERT INTO planned (repository, arch, commit_id) VALUES (?, ?, ?) "
                       "ON CONFLICT DO UPDATE SET commit_id = excluded.commit_id",
                       (repository, arch, commit))


async def set_recipe_errors(conn: Connection, repository: str,
                            problems: Sequence[BrokenRecipe]) -> None:
    """The recipes of a repository that fail to parse now (replacing the previous list)."""
    await conn.execute("DELETE FROM recipe_errors WHERE repository = ?", (repository,))
    await conn.executemany(
        "INSERT OR REPLACE INTO recipe_errors (repository, path, file, line, message) "
        "VALUES (?, ?, ?, ?, ?)",
        [(repository, p.path, p.file, p.line, p.message) for p in problems])


async def record_build(conn: Connection, done: BuildDone) -> None:
    """A build's report and what it consumed: its full log for the API after the live one,
    its source's history (durations for the estimates, peak memory), and which build
    environment built it."""
    usage = done.usage
    disk = usage.disk_bytes if isinstance(usage, UsageV3) else None
    await conn.execute(
        "INSERT INTO builds (task_id, attempt, builder, outcome, reason, log_url, duration_s,"
        " time, environment, cpu_s, max_rss_kb, output_bytes, log_bytes, disk_bytes)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (done.task_id, done.attempt, done.builder, str(done.outcome), done.reason,
         done.log_url, done.duration_s, time.time(), done.environment,
         *((usage.cpu_s, usage.max_rss_kb, usage.output_bytes, usage.log_bytes)
           if usage is not None else (None, None, None, None)), disk))


async def peak_memory(db: Database) -> dict[str, int]:
    """Source → the peak memory (KiB) its latest build that reported usage reached."""
    rows = await db.fetchall(
        "SELECT tasks.source, builds.max_rss_kb FROM builds JOIN tasks USING (task_id)"
        " WHERE builds.max_rss_kb > 0 ORDER BY builds.seq")
    return {r["source"]: int(r["max_rss_kb"]) for r in rows}


async def peak_disk(db: Database) -> dict[str, int]:
    """Source → the disk (bytes) its latest build that reported it took."""
    rows = await db.fetchall(
        "SELECT tasks.source, builds.disk_bytes FROM builds JOIN tasks USING (task_id)"
        " WHERE builds.disk_bytes > 0 ORDER BY builds.seq")
    return {r["source"]: int(r["disk_bytes"]) for r in rows}


async def learned_durations(db: Database) -> dict[tuple[str, str, str], float]:
    """(repository, arch, source) → how long its last successful build took."""
    rows = await db.fetchall(
        "SELECT tasks.repository, tasks.arch, tasks.source, builds.duration_s FROM builds"
        " JOIN tasks USING (task_id) WHERE builds.outcome = 'success' ORDER BY builds.seq")
    return {(r["repository"], r["arch"], r["source"]): float(r["duration_s"]) for r in rows}


async def load_environments(db: Database) -> dict[str, str | None]:
    """Each repository's build environment, as last set (by the first start or an operator)."""
    rows = await db.fetchall("SELECT repository, environment FROM repo_environments")
    return {r["repository"]: r["environment"] for r in rows}


async def save_environment(conn: Connection, repository: str, environment: str | None) -> None:
    await conn.execute(
        "INSERT INTO repo_environments (repository, environment, time) VALUES (?, ?, ?)"
        " ON CONFLICT (repository) DO UPDATE SET environment = excluded.environment,"
        " time = excluded.time", (repository, environment, time.time()))


async def record_generation(conn: Connection, channel: str, arch: str, generation: int,
                            task_id: int, source: str, release: int, build_release: int,
                            packages: Sequence[str]) -> None:
    """A generation vessel published with a task's packages (as package-published said)."""
    await conn.execute(
        "INSERT INTO generations (channel, arch, generation, task_id, source, release, "
        "build_release, packages, time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (channel, arch, generation, task_id, source, release, build_release,
         json.dumps(list(packages)), time.time()))


# -- forge webhook deliveries ----------------------------------------------------------------
async def delivery_seen(db: Database, delivery_id: str) -> bool:
    row = await db.fetchone("SELECT 1 FROM webhook_deliveries WHERE delivery_id = ?",
                            (delivery_id,))
    return row is not None


async def record_delivery(conn: Connection, delivery_id: str, repository: str,
                          commit: str) -> bool:
    """Record a delivery once; True when it was new."""
    cursor = await conn.execute(
        "INSERT OR IGNORE INTO webhook_deliveries (delivery_id, repository, commit_id, received)"
        " VALUES (?, ?, ?, ?)", (delivery_id, repository, commit, time.time()))
    return cursor.rowcount == 1


async def head(conn: Connection, repository: str) -> str | None:
    """The branch head last recorded for a repository."""
    row = await (await conn.execute("SELECT head FROM repositories WHERE name = ?",
                                    (repository,))).fetchone()
    return None if row is None or row["head"] is None else str(row["head"])


# -- builders ----------------------------------------------------------------------------------
async def save_builder(conn: Connection, builder: Builder) -> None:
    report = {"features": sorted(builder.features), "memory_mb": builder.memory_mb,
              "disk_mb": builder.disk_mb, "running": sorted(builder.running),
              "claimed": sorted(builder.claimed), "artefacts_url": builder.artefacts_url,
              "environments": sorted(builder.environments)}
    await conn.execute(
        "INSERT INTO builders (name, arch, status, boot, slots, interval_s, seen, report) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET arch = excluded.arch,"
        " status = excluded.status, boot = excluded.boot, slots = excluded.slots,"
        " interval_s = excluded.interval_s, seen = excluded.seen, report = excluded.report",
        (builder.name, builder.arch, str(builder.status), builder.boot, builder.slots,
         builder.interval_s, builder.seen, json.dumps(report)))


async def load_builders(db: Database) -> list[Builder]:
    out = []
    for row in await db.fetchall("SELECT * FROM builders ORDER BY name"):
        report = json.loads(row["report"])
        out.append(Builder(
            name=row["name"], arch=row["arch"], status=BuilderStatus(row["status"]),
            boot=row["boot"], slots=row["slots"], interval_s=row["interval_s"],
            seen=row["seen"], features=frozenset(report["features"]),
            memory_mb=report["memory_mb"], disk_mb=report["disk_mb"],
            running=frozenset((a, b) for a, b in report["running"]),
            claimed=frozenset((a, b) for a, b in report["claimed"]),
            artefacts_url=report["artefacts_url"],
            environments=frozenset(report["environments"])))
    return out


# -- operators' levers -------------------------------------------------------------------------
async def save_levers(conn: Connection, levers: Levers) -> None:
    """The levers as they are now (replacing what was stored)."""
    rows = [("pause", "")] if levers.paused else []
    rows += [("pause", name) for name in sorted(levers.paused_repositories)]
    rows += [("drain", name) for name in sorted(levers.drained)]
    await conn.execute("DELETE FROM levers")
    now = time.time()
    await conn.executemany("INSERT INTO levers (kind, name, time) VALUES (?, ?, ?)",
                           [(kind, name, now) for kind, name in rows])


async def load_levers(db: Database) -> Levers:
    rows = [(r["kind"], r["name"]) for r in await db.fetchall("SELECT kind, name FROM levers")]
    return Levers(paused=("pause", "") in rows,
                  paused_repositories=frozenset(n for k, n in rows if k == "pause" and n),
                  drained=frozenset(n for k, n in rows if k == "drain"))
