"""The repository as a whole: publish a generation, move ``current``, reconcile, prune.

Consistency under kill -9 (the protocol every writer follows):

1. inside one ``BEGIN IMMEDIATE`` transaction (the SQLite write lock, shared by the service
   and the CLI even across processes): place pool files, insert the generation's rows, write
   its directory atomically (:mod:`daemon.vessel.generations`), move the channel's head;
2. commit (the caller may add its outbox rows first);
3. after the commit, under a file lock, point ``current`` at whatever head the database
   holds *now* (so two writers finishing in any order leave ``current`` = the last head).

A crash before 2 leaves a directory (and maybe pool files) without rows: :meth:`reconcile`,
run on start while holding the write lock, removes them. A crash between 2 and 3 leaves
``current`` on the previous complete generation until reconcile moves it. ``current`` only
ever names a directory that was complete before it was named.
"""

from __future__ import annotations

import asyncio
import bisect
import fcntl
import os
import shutil
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from daemon.vessel import generations as gens
from daemon.vessel import minisign, pool, store
from daemon.vessel.config import VesselConfig
from daemon.vessel.errors import RepositoryError
from daemon.vessel.index import index_bytes
from events.sqlite import Connection, Database


@dataclass(frozen=True)
class _Cached:
    """A published generation's members, kept to spare decoding and sorting 50,000 again."""

    blob: bytes
    members: list[store.MemberRef]
    hashes: list[bytes]
    shas: set[str]


@dataclass(frozen=True)
class ReconcileReport:
    removed_dirs: tuple[Path, ...]
    rebuilt: tuple[tuple[str, int], ...]
    removed_pool_files: int


@dataclass(frozen=True)
class PruneReport:
    generations: tuple[tuple[str, int], ...]
    pool_files: int


class Repository:
    """Vessel's repository on disk plus its signing key; owns no database connection."""

    def __init__(self, config: VesselConfig, key: minisign.SecretKey) -> None:
        self.config = config
        self.layout = config.layout
        self.key = key
        self._entries: dict[str, bytes] = {}
        #: The last published members per (channel, arch): its blob and decoded list.
        self._members: dict[tuple[str, str], _Cached] = {}

    @classmethod
    def open(cls, config: VesselConfig) -> Repository:
        """Create the directories, load (or generate) the key, publish ``minisign.pub``."""
        layout = config.layout
        for path in (layout.state_dir, layout.root, layout.pool, layout.tmp):
            path.mkdir(parents=True, exist_ok=True)
        key = minisign.load_or_create_key(layout.secret_key)
        public = key.public.to_file_text().encode()
        try:
            current = layout.public_key.read_bytes()
        except FileNotFoundError:
            current = b""
        if current != public:
            gens.write_atomic(layout.public_key, public)
        return cls(config, key)

    async def publish(self, conn: Connection, channel: str, arch: str,
                      members: Sequence[store.MemberRef], origin: str) -> int:
        """Make a new generation of ``channel``/``arch`` inside the caller's transaction.

        ``members`` (name, source, sha256; each already in ``vessel_packages``) is the whole
        new package set. The directory is written and the channel's head moved before this
        returns; ``current`` moves in :meth:`sync_current` after the caller commits.
        """
        ordered = sorted(members)
        number = await store.next_generation(conn, channel)
        created = datetime.now(UTC).isoformat(timespec="seconds")
        row = store.GenerationRow(channel, number, arch, created, origin, len(ordered))
        blob = store.encode_members(ordered)
        shas = {m[2] for m in ordered}
        hashes = self._sorted_hashes(shas)
        await store.create_generation(conn, row, blob, store.encode_hashes(hashes))
        await self._write(conn, row, ordered)
        await store.set_head(conn, channel, arch, number)
        self._members[(channel, arch)] = _Cached(blob, ordered, hashes, shas)
        return number

    def _sorted_hashes(self, shas: set[str]) -> list[bytes]:
        """Binary hashes, sorted: patched from a cached generation when only a few differ."""
        for cached in self._members.values():
            gone, new = cached.shas - shas, shas - cached.shas
            if len(gone) + len(new) <= 64:
                result = list(cached.hashes)
                for sha in gone:
                    del result[bisect.bisect_left(result, bytes.fromhex(sha))]
                for sha in new:
                    bisect.insort(result, bytes.fromhex(sha))
                return result
        return sorted(bytes.fromhex(sha) for sha in shas)

    async def members(self, conn: Connection, channel: str, number: int
                      ) -> list[store.MemberRef]:
        """A generation's members; decoding 50,000 is skipped when the blob is the cached one.

        The cache is checked against the stored bytes, so a rolled-back transaction that
        reused a generation number can never serve stale members.
        """
        blob = await store.members_blob(conn, channel, number)
        if blob is None:
            return []
        for cached in self._members.values():
            if cached.blob == blob:
                return list(cached.members)
        return store.decode_members(blob)

    def remember(self, sha256: str, entry: bytes) -> None:
        """Cache a package's encoded index entry (immutable: keyed by content hash)."""
        self._entries[sha256] = entry

    async def _write(self, conn: Connection, row: store.GenerationRow,
                     ordered: Sequence[store.MemberRef]) -> None:
        shas = [m[2] for m in ordered]
        missing = [sha for sha in shas if sha not in self._entries]
        if missing:
            self._entries.update(await store.entries(conn, missing))
        try:
            entries = [self._entries[sha] for sha in shas]
        except KeyError as exc:
            raise RepositoryError(f"package {exc.args[0]} is listed but not stored") from None
        data = index_bytes(row.channel, row.arch, row.generation, row.created, entries)
        await asyncio.to_thread(gens.write_generation, self.layout, self.key, row.channel,
                                row.arch, row.generation, data)

    async def sync_current(self, db: Database, targets: Iterable[tuple[str, str]] | None = None
                           ) -> None:
        """Point ``current`` at the committed head, for ``targets`` (channel, arch) or all."""
        async with self._current_lock():
            for channel, arch, number in await _heads(db):
                if targets is None or (channel, arch) in set(targets):
                    await asyncio.to_thread(gens.switch_current, self.layout, channel, arch,
                                            number)

    async def reconcile(self, db: Database) -> ReconcileReport:
        """Make disk match the database after a crash. Run on start, before serving imports."""
        removed: list[Path] = []
        rebuilt: list[tuple[str, int]] = []
        async with db.transaction() as conn:
            known = {(g.channel, g.generation): g for g in await store.generations(conn)}
            on_disk = set()
            for entry in gens.scan(self.layout):
                if entry.generation is None or (entry.channel, entry.generation) not in known:
                    await asyncio.to_thread(gens.remove, entry.path)
                    removed.append(entry.path)
                else:
                    on_disk.add((entry.channel, entry.generation))
            for key, row in known.items():
                if key not in on_disk:
                    await self._rebuild(conn, row)
                    rebuilt.append(key)
            referenced = await store.package_hashes(conn)
            dropped = await asyncio.to_thread(pool.collect_garbage, self.layout, referenced)
            await asyncio.to_thread(_clear, self.layout.tmp)
        await self.sync_current(db)
        return ReconcileReport(tuple(removed), tuple(rebuilt), len(dropped))

    async def prune(self, db: Database) -> PruneReport:
        """Drop generations beyond the policy (never a head) and packages nobody lists."""
        keep = self.config.keep_generations
        async with db.transaction() as conn:
            heads = {(c, g) for c, _a, g in await store.heads(conn)}
            by_arch: dict[tuple[str, str], list[int]] = {}
            for row in await store.generations(conn):
                by_arch.setdefault((row.channel, row.arch), []).append(row.generation)
            doomed = [
                (channel, arch, number)
                for (channel, arch), numbers in by_arch.items()
                for number in sorted(numbers, reverse=True)[keep + 1:]
                if (channel, number) not in heads
            ]
            if not doomed:
                return PruneReport((), 0)
            candidates: set[str] = set()
            for channel, _arch, number in doomed:
                candidates |= await store.hashes(conn, channel, number)
            for cached in self._members.values():  # still listed by a kept generation
                candidates -= cached.shas
            await store.delete_generations(conn, [(c, n) for c, _a, n in doomed])
            gone = await store.unreferenced(conn, candidates)
            await store.delete_packages(conn, gone)
            for sha in gone:
                self._entries.pop(sha, None)
                await asyncio.to_thread(self.layout.pool_file(sha).unlink, True)
        for channel, arch, number in doomed:
            path = self.layout.generation_dir(channel, arch, number)
            await asyncio.to_thread(gens.remove, path)
        return PruneReport(tuple((c, n) for c, _a, n in doomed), len(gone))

    async def _rebuild(self, conn: Connection, row: store.GenerationRow) -> None:
        """Rewrite a committed generation whose directory vanished (from the database)."""
        await self._write(conn, row, await self.members(conn, row.channel, row.generation))

    @asynccontextmanager
    async def _current_lock(self) -> AsyncIterator[None]:
        """Serialise ``current`` switches across processes (service and CLI)."""
        fd = os.open(self.layout.lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock


async def _heads(db: Database) -> list[tuple[str, str, int]]:
    async with db.read() as conn:
        return await store.heads(conn)


def _clear(path: Path) -> None:
    if path.is_dir():
        for child in path.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink(missing_ok=True)
