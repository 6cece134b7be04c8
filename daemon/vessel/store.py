"""Vessel's state in SQLite: packages, generations, their members, channel heads, imports.

Why the database is the truth and the disk follows it: a generation exists when its row is
committed. Its directory is written (atomically) *inside* the same transaction, before the
commit, so a committed generation always has its complete directory; a directory without a
row is the leftover of a crash and is removed on start (:mod:`daemon.vessel.repository`).

Every function takes an open connection: the caller owns the transaction (see
:mod:`daemon.vessel.importer` for the contract with the outbox).

The migration list :data:`MIGRATIONS` includes the outbox and inbox tables so that the
service, the CLI and the tests all open ``vessel.sqlite`` with the same list (the list is
append-only; ``PRAGMA user_version`` counts the scripts applied).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import msgspec

from events.inbox import INBOX_SCHEMA
from events.outbox import OUTBOX_SCHEMA
from events.payloads import PublishedPackage
from events.sqlite import Connection

_VESSEL_SCHEMA = """
CREATE TABLE vessel_packages (
    sha256 TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    source TEXT NOT NULL,
    release INTEGER NOT NULL,
    build_release INTEGER NOT NULL,
    size INTEGER NOT NULL,
    entry BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE vessel_generations (
    channel TEXT NOT NULL,
    generation INTEGER NOT NULL,
    arch TEXT NOT NULL,
    created TEXT NOT NULL,
    origin TEXT NOT NULL,
    packages INTEGER NOT NULL,
    PRIMARY KEY (channel, generation)
);
CREATE TABLE vessel_members (
    channel TEXT NOT NULL,
    generation INTEGER NOT NULL,
    name TEXT NOT NULL,
    source TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (channel, generation, name)
) WITHOUT ROWID;
CREATE INDEX vessel_members_sha ON vessel_members (sha256);
CREATE TABLE vessel_heads (
    channel TEXT NOT NULL,
    arch TEXT NOT NULL,
    generation INTEGER NOT NULL,
    PRIMARY KEY (channel, arch)
);
CREATE TABLE vessel_imports (
    channel TEXT NOT NULL,
    arch TEXT NOT NULL,
    source TEXT NOT NULL,
    release INTEGER NOT NULL,
    build_release INTEGER NOT NULL,
    task_id INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    packages BLOB NOT NULL,
    PRIMARY KEY (channel, arch, source, release, build_release)
);
"""

MIGRATIONS: tuple[str, ...] = (_VESSEL_SCHEMA, OUTBOX_SCHEMA, INBOX_SCHEMA)


@dataclass(frozen=True)
class Member:
    name: str
    source: str
    sha256: str
    release: int
    build_release: int


@dataclass(frozen=True)
class GenerationRow:
    channel: str
    generation: int
    arch: str
    created: str
    origin: str
    packages: int


@dataclass(frozen=True)
class ImportRow:
    generation: int
    packages: tuple[PublishedPackage, ...]


async def head(conn: Connection, channel: str, arch: str) -> int | None:
    async with conn.execute(
        "SELECT generation FROM vessel_heads WHERE channel = ? AND arch = ?", (channel, arch)
    ) as cur:
        row = await cur.fetchone()
    return None if row is None else int(row[0])


async def heads(conn: Connection) -> list[tuple[str, str, int]]:
    async with conn.execute("SELECT channel, arch, generation FROM vessel_heads") as cur:
        return [(r[0], r[1], int(r[2])) for r in await cur.fetchall()]


async def set_head(conn: Connection, channel: str, arch: str, generation: int) -> None:
    await conn.execute(
        "INSERT INTO vessel_heads (channel, arch, generation) VALUES (?, ?, ?) "
        "ON CONFLICT (channel, arch) DO UPDATE SET generation = excluded.generation",
        (channel, arch, generation),
    )


async def next_generation(conn: Connection, channel: str) -> int:
    """Generation numbers count per channel, across its arches, so one number names one."""
    async with conn.execute(
        "SELECT COALESCE(MAX(generation), 0) FROM vessel_generations WHERE channel = ?",
        (channel,),
    ) as cur:
        row = await cur.fetchone()
    return int(row[0] if row else 0) + 1


async def generation(conn: Connection, channel: str, number: int) -> GenerationRow | None:
    async with conn.execute(
        "SELECT channel, generation, arch, created, origin, packages FROM vessel_generations "
        "WHERE channel = ? AND generation = ?", (channel, number),
    ) as cur:
        row = await cur.fetchone()
    return None if row is None else GenerationRow(*row)


async def generations(conn: Connection, channel: str | None = None) -> list[GenerationRow]:
    sql = "SELECT channel, generation, arch, created, origin, packages FROM vessel_generations"
    params: tuple[str, ...] = ()
    if channel is not None:
        sql += " WHERE channel = ?"
        params = (channel,)
    async with conn.execute(sql + " ORDER BY channel, generation", params) as cur:
        return [GenerationRow(*r) for r in await cur.fetchall()]


async def members_named(conn: Connection, channel: str, number: int,
                        names: Iterable[str]) -> dict[str, Member]:
    """The members of a generation with these package names (the ones an import touches)."""
    found: dict[str, Member] = {}
    for name in sorted(set(names)):  # a build has a handful of packages: one lookup each
        async with conn.execute(
            "SELECT m.name, m.source, m.sha256, p.release, p.build_release "
            "FROM vessel_members m JOIN vessel_packages p ON p.sha256 = m.sha256 "
            "WHERE m.channel = ? AND m.generation = ? AND m.name = ?",
            (channel, number, name),
        ) as cur:
            row = await cur.fetchone()
        if row is not None:
            found[name] = Member(*row)
    return found


async def add_package(conn: Connection, sha256: str, name: str, source: str, release: int,
                      build_release: int, size: int, entry: bytes) -> None:
    await conn.execute(
        "INSERT OR IGNORE INTO vessel_packages "
        "(sha256, name, source, release, build_release, size, entry) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (sha256, name, source, release, build_release, size, entry),
    )


async def create_generation(
    conn: Connection, row: GenerationRow, base: tuple[str, int] | None,
    drop_source: str | None, added: Iterable[tuple[str, str, str]],
) -> int:
    """Insert generation ``row``: the members of ``base`` (channel, number) without those of
    ``drop_source``, plus ``added`` (name, source, sha256). Returns the member count."""
    if base is not None:
        await conn.execute(
            "INSERT INTO vessel_members (channel, generation, name, source, sha256) "
            "SELECT ?, ?, name, source, sha256 FROM vessel_members "
            "WHERE channel = ? AND generation = ? AND source IS NOT ?",
            (row.channel, row.generation, base[0], base[1], drop_source),
        )
    await conn.executemany(
        "INSERT OR REPLACE INTO vessel_members (channel, generation, name, source, sha256) "
        "VALUES (?, ?, ?, ?, ?)",
        [(row.channel, row.generation, n, s, h) for n, s, h in added],
    )
    async with conn.execute(
        "SELECT COUNT(*) FROM vessel_members WHERE channel = ? AND generation = ?",
        (row.channel, row.generation),
    ) as cur:
        count_row = await cur.fetchone()
    count = int(count_row[0]) if count_row else 0
    await conn.execute(
        "INSERT INTO vessel_generations (channel, generation, arch, created, origin, packages) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (row.channel, row.generation, row.arch, row.created, row.origin, count),
    )
    return count


async def index_entries(conn: Connection, channel: str, number: int) -> list[bytes]:
    """The pre-encoded index entries of a generation, ordered by package name."""
    async with conn.execute(
        "SELECT p.entry FROM vessel_members m JOIN vessel_packages p ON p.sha256 = m.sha256 "
        "WHERE m.channel = ? AND m.generation = ? ORDER BY m.name",
        (channel, number),
    ) as cur:
        return [bytes(r[0]) for r in await cur.fetchall()]


async def find_import(conn: Connection, channel: str, arch: str, source: str, release: int,
                      build_release: int) -> ImportRow | None:
    async with conn.execute(
        "SELECT generation, packages FROM vessel_imports WHERE channel = ? AND arch = ? AND "
        "source = ? AND release = ? AND build_release = ?",
        (channel, arch, source, release, build_release),
    ) as cur:
        row = await cur.fetchone()
    if row is None:
        return None
    packages = msgspec.json.decode(row[1], type=tuple[PublishedPackage, ...])
    return ImportRow(int(row[0]), packages)


async def record_import(conn: Connection, channel: str, arch: str, source: str, release: int,
                        build_release: int, task_id: int, number: int,
                        packages: Iterable[PublishedPackage]) -> None:
    await conn.execute(
        "INSERT INTO vessel_imports (channel, arch, source, release, build_release, task_id, "
        "generation, packages) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (channel, arch, source, release, build_release, task_id, number,
         msgspec.json.encode(list(packages))),
    )


async def delete_generations(conn: Connection, doomed: Iterable[tuple[str, int]]) -> None:
    rows = list(doomed)
    await conn.executemany(
        "DELETE FROM vessel_members WHERE channel = ? AND generation = ?", rows)
    await conn.executemany(
        "DELETE FROM vessel_generations WHERE channel = ? AND generation = ?", rows)


async def delete_unreferenced_packages(conn: Connection) -> list[str]:
    """Forget packages no generation lists; return their hashes (their pool files go too)."""
    async with conn.execute(
        "SELECT sha256 FROM vessel_packages p WHERE NOT EXISTS "
        "(SELECT 1 FROM vessel_members m WHERE m.sha256 = p.sha256)"
    ) as cur:
        doomed = [str(r[0]) for r in await cur.fetchall()]
    await conn.executemany("DELETE FROM vessel_packages WHERE sha256 = ?",
                           [(s,) for s in doomed])
    return doomed


async def package_hashes(conn: Connection) -> set[str]:
    async with conn.execute("SELECT sha256 FROM vessel_packages") as cur:
        return {str(r[0]) for r in await cur.fetchall()}
