"""Summit's SQLite schema: the migrations, in the order they shipped (append only).

Kept apart from the statements that read and write it (:mod:`daemon.summit.store` for the
scheduler's state, :mod:`daemon.summit.queries` for what the API and dashboard read) so that
each of those stays a size a reader can hold in mind; the schema itself only ever grows.
"""

from __future__ import annotations

from events.inbox import INBOX_SCHEMA
from events.outbox import OUTBOX_SCHEMA

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
