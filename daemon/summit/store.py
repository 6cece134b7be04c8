"""Summit's SQLite state: tasks, what the repository has published, the repositories it
watches and the commit each planner has applied, recipe errors, and each task's timeline.

The planner keeps the same facts in memory; this store is what survives a restart (the
planner is rebuilt from it) and what the API and the CLI read.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from daemon.summit.planning.fleet import Builder, BuilderStatus
from daemon.summit.planning.graph import PublishedIndex
from daemon.summit.planning.levers import Levers
from daemon.summit.planning.recipe import BrokenRecipe
from daemon.summit.planning.states import BlockKind, BlockReason, Task, TaskReason, TaskState
from events.inbox import INBOX_SCHEMA
from events.outbox import OUTBOX_SCHEMA
from events.payloads import BuildDone, UsageV3
from events.sqlite import Connection, Database, Row

MIGRATIONS: tuple[str, ...] = (
    OUTBOX_SCHEMA,
    INBOX_SCHEMA,
    """
    CREATE TABLE tasks (
        task_id INTEGER PRIMARY KEY,
        repository TEXT NOT NULL,
        arch TEXT NOT NULL,
        source TEXT NOT NULL,
        version TEXT NOT NULL,
        release INTEGER NOT NULL,
        build_release INTEGER NOT NULL,
        recipe_path TEXT NOT NULL,
        commit_id TEXT NOT NULL,
        reason TEXT NOT NULL,
        state TEXT NOT NULL,
        blocked_by TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        builder TEXT,
        failure TEXT,
        created REAL NOT NULL,
        updated REAL NOT NULL
    );
    CREATE INDEX tasks_state ON tasks (state);
    CREATE INDEX tasks_source ON tasks (source);
    CREATE TABLE published (
        channel TEXT NOT NULL, arch TEXT NOT NULL, source TEXT NOT NULL,
        release INTEGER NOT NULL,
        PRIMARY KEY (channel, arch, source)
    ) WITHOUT ROWID;
    CREATE TABLE providers (
        channel TEXT NOT NULL, arch TEXT NOT NULL, name TEXT NOT NULL, source TEXT NOT NULL,
        PRIMARY KEY (channel, arch, name, source)
    ) WITHOUT ROWID;
    CREATE TABLE repositories (
        name TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        branch TEXT NOT NULL,
        head TEXT,
        fetched REAL,
        error TEXT
    );
    CREATE TABLE planned (
        repository TEXT NOT NULL, arch TEXT NOT NULL, commit_id TEXT NOT NULL,
        PRIMARY KEY (repository, arch)
    ) WITHOUT ROWID;
    CREATE TABLE recipe_errors (
        repository TEXT NOT NULL, path TEXT NOT NULL, file TEXT NOT NULL, line INTEGER,
        message TEXT NOT NULL,
        PRIMARY KEY (repository, file)
    ) WITHOUT ROWID;
    CREATE TABLE timeline (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id INTEGER NOT NULL,
        time REAL NOT NULL,
        event_id TEXT,
        type TEXT NOT NULL,
        summary TEXT NOT NULL
    );
    CREATE INDEX timeline_task ON timeline (task_id, seq);
    """,
    # The dashboard and API: each build's report (where its log is) and each generation
    # of the repository that summit learned of from package-published.
    """
    CREATE TABLE builds (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id INTEGER NOT NULL,
        builder TEXT NOT NULL,
        outcome TEXT NOT NULL,
        reason TEXT,
        log_url TEXT,
        duration_s REAL NOT NULL,
        time REAL NOT NULL
    );
    CREATE INDEX builds_task ON builds (task_id, seq);
    CREATE TABLE generations (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        channel TEXT NOT NULL,
        arch TEXT NOT NULL,
        generation INTEGER NOT NULL,
        task_id INTEGER NOT NULL,
        source TEXT NOT NULL,
        release INTEGER NOT NULL,
        build_release INTEGER NOT NULL,
        packages TEXT NOT NULL,
        time REAL NOT NULL
    );
    CREATE INDEX generations_channel ON generations (channel, arch, generation);
    """,
    # Forge webhook deliveries already acted on (a forge redelivers on timeouts).
    """
    CREATE TABLE webhook_deliveries (
        delivery_id TEXT PRIMARY KEY,
        repository TEXT NOT NULL,
        commit_id TEXT NOT NULL,
        received REAL NOT NULL
    ) WITHOUT ROWID;
    """,
    # Summit assigns tasks to builders: the builders it knows, a task's priority and when it
    # was assigned, and which attempt each build report was about.
    """
    ALTER TABLE tasks ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE tasks ADD COLUMN assigned_at REAL;
    ALTER TABLE builds ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1;
    CREATE TABLE builders (
        name TEXT PRIMARY KEY,
        arch TEXT NOT NULL,
        status TEXT NOT NULL,
        boot TEXT NOT NULL,
        slots INTEGER NOT NULL,
        interval_s REAL NOT NULL,
        seen REAL NOT NULL,
        report TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
    # Operators' levers on dispatch: pauses (kind 'pause', name '' for the whole farm or a
    # repository) and drained builders (kind 'drain').
    """
    CREATE TABLE levers (
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        time REAL NOT NULL,
        PRIMARY KEY (kind, name)
    ) WITHOUT ROWID;
    """,
    # The overview's recent events count the entries one event wrote in one state.
    """
    CREATE INDEX timeline_event ON timeline (event_id, type);
    """,
    # A source's build history: what each build consumed (build-done v2's usage).
    """
    ALTER TABLE builds ADD COLUMN cpu_s REAL;
    ALTER TABLE builds ADD COLUMN max_rss_kb INTEGER;
    ALTER TABLE builds ADD COLUMN output_bytes INTEGER;
    ALTER TABLE builds ADD COLUMN log_bytes INTEGER;
    """,
    # Which build environment each build ran in (its digest; NULL: the builder host's own
    # system, not hermetic).
    """
    ALTER TABLE builds ADD COLUMN environment TEXT;
    """,
    # An infrastructure failure's next attempt waits out its back-off.
    """
    ALTER TABLE tasks ADD COLUMN retry_at REAL;
    """,
    # Each repository's build environment (NULL: none named), as an operator last set it.
    """
    CREATE TABLE repo_environments (
        repository TEXT PRIMARY KEY,
        environment TEXT,
        time REAL NOT NULL
    ) WITHOUT ROWID;
    """,
    # Assignments withdrawn before their builder claimed them (a task ahead in the queue took
    # the slot): attempts that do not count towards max_attempts.
    """
    ALTER TABLE tasks ADD COLUMN withdrawn INTEGER NOT NULL DEFAULT 0;
    """,
    # The disk a build took (its tree's peak size; build-done v3): learned as a need.
    """
    ALTER TABLE builds ADD COLUMN disk_bytes INTEGER;
    """,
)


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


@dataclass(frozen=True)
class RepositoryRow:
    name: str
    url: str
    branch: str
    head: str | None
    fetched: float | None
    error: str | None


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


async def repositories(db: Database) -> list[RepositoryRow]:
    rows = await db.fetchall("SELECT * FROM repositories ORDER BY name")
    return [RepositoryRow(r["name"], r["url"], r["branch"], r["head"], r["fetched"], r["error"])
            for r in rows]


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


async def recipe_errors(db: Database, repository: str | None = None) -> list[dict[str, Any]]:
    sql = "SELECT * FROM recipe_errors"
    params: tuple[str, ...] = ()
    if repository is not None:
        sql += " WHERE repository = ?"
        params = (repository,)
    return [dict(r) for r in await db.fetchall(sql + " ORDER BY repository, file", params)]


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
