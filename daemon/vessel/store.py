"""Vessel's state in SQLite: packages, generations, their members, channel heads, imports.

Why a generation is a list of parts and not one row per package: a channel of 50,000
packages would otherwise copy 50,000 rows (or one 50,000-member blob) per publication. A
generation row lists its index parts by hash (``parts``: msgpack of sha256 hex strings, in
order); a part row (``vessel_parts``, keyed by the hash of the part's file, shared by every
generation that lists it) holds its members — ``(name, source, sha256)`` sorted by name,
msgpack-encoded. A publication inserts the few parts that changed (:mod:`daemon.vessel.parts`).
Package rows (``vessel_packages``) are keyed by content hash and never change.

Why no row per (part, package): such a table (``vessel_part_members``, until the sixth
migration) answered "does a kept part still list this package?" with an index lookup, but
each new part inserted its ~500 rows at random places of a tree keyed by package hash: at
50,000 packages one publication dirtied ~700 pages (3 MB of WAL), ten times what it changed.
Pruning answers that question from the parts themselves (:func:`daemon.vessel.parts.unlisted`).

Generations stored before parts existed keep their ``members`` blob and a NULL ``parts``
until :meth:`daemon.vessel.repository.Repository.upgrade` cuts them into parts.

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

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

import msgspec

from daemon.vessel.parts import MemberRef
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
    members BLOB NOT NULL,
    hashes BLOB NOT NULL,
    PRIMARY KEY (channel, generation)
);
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

#: Every name each stored package offers: its declared providers plus its own name, plain
#: and as ``name(x)``. Kept by triggers, so any writer of ``vessel_packages`` keeps it right;
#: the ownership check looks a build's names up here instead of decoding a whole channel.
_PROVIDES_SCHEMA = """
CREATE TABLE vessel_provides (
    provider TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (provider, sha256)
) WITHOUT ROWID;
CREATE INDEX vessel_provides_by_package ON vessel_provides (sha256);
CREATE TRIGGER vessel_provides_added AFTER INSERT ON vessel_packages BEGIN
    INSERT OR IGNORE INTO vessel_provides (provider, sha256)
        SELECT value, NEW.sha256 FROM json_each(CAST(NEW.entry AS TEXT), '$.provides')
        UNION SELECT NEW.name, NEW.sha256
        UNION SELECT 'name(' || NEW.name || ')', NEW.sha256;
END;
CREATE TRIGGER vessel_provides_removed AFTER DELETE ON vessel_packages BEGIN
    DELETE FROM vessel_provides WHERE sha256 = OLD.sha256;
END;
INSERT OR IGNORE INTO vessel_provides (provider, sha256)
    SELECT value, sha256 FROM vessel_packages, json_each(CAST(entry AS TEXT), '$.provides')
    UNION SELECT name, sha256 FROM vessel_packages
    UNION SELECT 'name(' || name || ')', sha256 FROM vessel_packages;
"""

#: Index parts: see the module docstring. ``members`` and ``hashes`` of a generation are
#: empty once it has ``parts``.
_PARTS_SCHEMA = """
ALTER TABLE vessel_generations ADD COLUMN parts BLOB;
CREATE TABLE vessel_parts (
    sha256 TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    members BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE vessel_part_members (
    package TEXT NOT NULL,
    part TEXT NOT NULL,
    PRIMARY KEY (package, part)
) WITHOUT ROWID;
CREATE INDEX vessel_part_members_by_part ON vessel_part_members (part);
CREATE INDEX vessel_packages_by_source ON vessel_packages (source);
"""

#: See the module docstring: which packages a part lists is read from the part itself.
_NO_PART_MEMBERS = """
DROP INDEX vessel_part_members_by_part;
DROP TABLE vessel_part_members;
"""

MIGRATIONS: tuple[str, ...] = (_VESSEL_SCHEMA, OUTBOX_SCHEMA, INBOX_SCHEMA, _PROVIDES_SCHEMA,
                               _PARTS_SCHEMA, _NO_PART_MEMBERS)


_members_type = list[tuple[str, str, str]]


@dataclass(frozen=True)
class PackageRelease:
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
    sql = ("SELECT channel, generation, arch, created, origin, packages "
           "FROM vessel_generations")
    params: tuple[str, ...] = ()
    if channel is not None:
        sql += " WHERE channel = ?"
        params = (channel,)
    async with conn.execute(sql + " ORDER BY channel, generation", params) as cur:
        return [GenerationRow(*r) for r in await cur.fetchall()]


async def add_package(conn: Connection, sha256: str, name: str, source: str, release: int,
                      build_release: int, size: int, entry: bytes) -> None:
    await conn.execute(
        "INSERT OR IGNORE INTO vessel_packages "
        "(sha256, name, source, release, build_release, size, entry) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (sha256, name, source, release, build_release, size, entry),
    )


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
        "DELETE FROM vessel_generations WHERE channel = ? AND generation = ?", rows)


def decode_members(blob: bytes) -> list[MemberRef]:
    return msgspec.msgpack.decode(blob, type=_members_type)


async def create_generation(conn: Connection, row: GenerationRow, parts: Sequence[str]) -> None:
    """Insert generation ``row`` listing ``parts`` (hashes, in order; each already stored)."""
    await conn.execute(
        "INSERT INTO vessel_generations (channel, generation, arch, created, origin, packages, "
        "members, hashes, parts) VALUES (?, ?, ?, ?, ?, ?, x'', x'', ?)",
        (row.channel, row.generation, row.arch, row.created, row.origin, row.packages,
         msgspec.msgpack.encode(list(parts))),
    )


async def add_part(conn: Connection, sha256: str, size: int, members: Sequence[MemberRef]
                   ) -> None:
    """Store a part (a no-op when a part of these very bytes is stored already)."""
    await conn.execute(
        "INSERT OR IGNORE INTO vessel_parts (sha256, size, members) VALUES (?, ?, ?)",
        (sha256, size, msgspec.msgpack.encode(list(members))))


async def generation_parts(conn: Connection, channel: str, number: int
                           ) -> list[str] | None:
    """A generation's part hashes in order (None: no such generation, or not cut yet)."""
    async with conn.execute(
        "SELECT parts FROM vessel_generations WHERE channel = ? AND generation = ?",
        (channel, number),
    ) as cur:
        row = await cur.fetchone()
    if row is None or row[0] is None:
        return None
    return msgspec.msgpack.decode(bytes(row[0]), type=list[str])


async def part(conn: Connection, sha256: str) -> tuple[int, list[MemberRef]] | None:
    """A stored part's size and members."""
    async with conn.execute(
        "SELECT size, members FROM vessel_parts WHERE sha256 = ?", (sha256,)
    ) as cur:
        row = await cur.fetchone()
    return None if row is None else (int(row[0]), decode_members(bytes(row[1])))


async def uncut(conn: Connection) -> list[tuple[GenerationRow, list[MemberRef]]]:
    """Generations stored before parts existed, with their members."""
    async with conn.execute(
        "SELECT channel, generation, arch, created, origin, packages, members "
        "FROM vessel_generations WHERE parts IS NULL ORDER BY channel, generation"
    ) as cur:
        return [(GenerationRow(*r[:6]), decode_members(bytes(r[6])))
                for r in await cur.fetchall()]


async def set_parts(conn: Connection, channel: str, number: int, parts: Sequence[str]) -> None:
    await conn.execute(
        "UPDATE vessel_generations SET parts = ?, members = x'', hashes = x'' "
        "WHERE channel = ? AND generation = ?",
        (msgspec.msgpack.encode(list(parts)), channel, number))


async def all_parts(conn: Connection) -> dict[tuple[str, int], list[str]]:
    """Every generation's part hashes."""
    async with conn.execute(
        "SELECT channel, generation, parts FROM vessel_generations WHERE parts IS NOT NULL"
    ) as cur:
        return {(str(r[0]), int(r[1])): msgspec.msgpack.decode(bytes(r[2]), type=list[str])
                for r in await cur.fetchall()}


async def stored_parts(conn: Connection) -> set[str]:
    async with conn.execute("SELECT sha256 FROM vessel_parts") as cur:
        return {str(r[0]) for r in await cur.fetchall()}


async def delete_parts(conn: Connection, shas: Collection[str]) -> None:
    await conn.execute("DELETE FROM vessel_parts WHERE sha256 IN "
                       "(SELECT value FROM json_each(?))",
                       (msgspec.json.encode(sorted(shas)).decode(),))


async def of_source(conn: Connection, source: str) -> list[MemberRef]:
    """Every stored package built from ``source`` (in any generation, or none)."""
    async with conn.execute(
        "SELECT name, source, sha256 FROM vessel_packages WHERE source = ?", (source,)
    ) as cur:
        return [(str(r[0]), str(r[1]), str(r[2])) for r in await cur.fetchall()]


async def releases(conn: Connection, shas: Iterable[str]) -> dict[str, PackageRelease]:
    """Release and build release of a few packages, by hash."""
    found: dict[str, PackageRelease] = {}
    for sha in shas:
        async with conn.execute(
            "SELECT sha256, release, build_release FROM vessel_packages WHERE sha256 = ?",
            (sha,),
        ) as cur:
            row = await cur.fetchone()
        if row is not None:
            found[sha] = PackageRelease(str(row[0]), int(row[1]), int(row[2]))
    return found


async def entries(conn: Connection, shas: Sequence[str]) -> dict[str, bytes]:
    """Pre-encoded index entries by hash; one scan when many are wanted, else lookups."""
    wanted = set(shas)
    found: dict[str, bytes] = {}
    if len(wanted) > 200:
        async with conn.execute("SELECT sha256, entry FROM vessel_packages") as cur:
            for sha, entry in await cur.fetchall():
                if sha in wanted:
                    found[sha] = bytes(entry)
        return found
    for sha in wanted:
        async with conn.execute(
            "SELECT entry FROM vessel_packages WHERE sha256 = ?", (sha,)
        ) as cur:
            row = await cur.fetchone()
        if row is not None:
            found[sha] = bytes(row[0])
    return found


@dataclass(frozen=True)
class Offered:
    """A stored package offering a name (its own, or a provider it declares)."""

    name: str
    sha256: str
    package: str
    source: str


async def offering(conn: Connection, names: Iterable[str]) -> list[Offered]:
    """Every stored package (in any generation, or none) that offers one of ``names``."""
    wanted = msgspec.json.encode(sorted(set(names))).decode()
    async with conn.execute(
        "SELECT o.provider, o.sha256, p.name, p.source FROM vessel_provides AS o "
        "JOIN vessel_packages AS p ON p.sha256 = o.sha256 "
        "WHERE o.provider IN (SELECT value FROM json_each(?))", (wanted,),
    ) as cur:
        return [Offered(str(r[0]), str(r[1]), str(r[2]), str(r[3]))
                for r in await cur.fetchall()]


async def delete_packages(conn: Connection, shas: Iterable[str]) -> None:
    await conn.executemany("DELETE FROM vessel_packages WHERE sha256 = ?",
                           [(s,) for s in shas])


async def package_hashes(conn: Connection) -> set[str]:
    async with conn.execute("SELECT sha256 FROM vessel_packages") as cur:
        return {str(r[0]) for r in await cur.fetchall()}
