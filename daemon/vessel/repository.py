"""The repository as a whole: publish a generation, move ``current``, reconcile, prune.

Consistency under kill -9 (the protocol every writer follows):

1. inside one ``BEGIN IMMEDIATE`` transaction (the SQLite write lock, shared by the service
   and the CLI even across processes): place pool files, insert the generation's rows, write
   its directory atomically (:mod:`daemon.vessel.generations`), move the channel's head;
2. commit (the caller may add its outbox rows first);
3. after the commit, under a file lock, point ``current`` at whatever head the database
   holds *now* (so two writers finishing in any order leave ``current`` = the last head).

A crash before 2 leaves a directory (and maybe pool and part files) without rows:
:meth:`reconcile`, run on start while holding the write lock, removes them. A crash between 2
and 3 leaves ``current`` on the previous complete generation until reconcile moves it.
``current`` only ever names a directory that was complete before it was named.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import shutil
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from daemon.formats.index import PartRef, part_bytes, part_ref, root_bytes
from daemon.formats.layout import part_uri
from daemon.vessel import generations as gens
from daemon.vessel import minisign, pool, store
from daemon.vessel.config import VesselConfig
from daemon.vessel.errors import RepositoryError
from daemon.vessel.parts import MemberRef, Members, Part, Piece, cut, unlisted
from events.sqlite import Connection, Database


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
        #: Encoded index entries and parts by content hash: immutable, so never stale.
        self._entries: dict[str, bytes] = {}
        self._parts: dict[str, Part] = {}

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
                      members: Sequence[MemberRef], origin: str) -> int:
        """Make a new generation of ``channel``/``arch`` listing exactly ``members``, inside
        the caller's transaction (seeding, promotion, rollback).

        Parts whose members did not change keep their bytes, hence their hash and file. The
        directory is written and the channel's head moved before this returns; ``current``
        moves in :meth:`sync_current` after the caller commits.
        """
        return await self.publish_pieces(conn, channel, arch, cut(sorted(members)), origin)

    async def publish_pieces(self, conn: Connection, channel: str, arch: str,
                             pieces: Sequence[Piece], origin: str) -> int:
        """Publish parts as they are (:class:`Part`) or cut anew (member lists)."""
        number = await store.next_generation(conn, channel)
        created = datetime.now(UTC).isoformat(timespec="seconds")
        parts, new = await self._store_pieces(conn, pieces)
        row = store.GenerationRow(channel, number, arch, created, origin,
                                  sum(len(p.members) for p in parts))
        await store.create_generation(conn, row, [p.sha256 for p in parts])
        await self._write(row, parts, new)
        await store.set_head(conn, channel, arch, number)
        return number

    async def _store_pieces(self, conn: Connection, pieces: Sequence[Piece]
                            ) -> tuple[list[Part], dict[str, bytes]]:
        """Encode and store the new pieces; return every part and the new parts' bytes."""
        parts: list[Part] = []
        new: dict[str, bytes] = {}
        for piece in pieces:
            if isinstance(piece, Part):
                parts.append(piece)
                continue
            data = part_bytes(await self._encoded(conn, piece))
            ref = part_ref(data, len(piece))
            made = Part(ref.sha256, ref.size, tuple(piece))
            await store.add_part(conn, made.sha256, made.size, made.members)
            # Content-addressed: the same bytes are the same members, even after a rollback.
            self._parts[made.sha256] = made
            new[made.sha256] = data
            parts.append(made)
        return parts, new

    async def _encoded(self, conn: Connection, members: Sequence[MemberRef]) -> list[bytes]:
        shas = [m[2] for m in members]
        missing = [sha for sha in shas if sha not in self._entries]
        if missing:
            self._entries.update(await store.entries(conn, missing))
        try:
            return [self._entries[sha] for sha in shas]
        except KeyError as exc:
            raise RepositoryError(f"package {exc.args[0]} is listed but not stored") from None

    async def view(self, conn: Connection, channel: str, number: int) -> Members:
        """A generation's members as its parts (empty if the generation does not exist)."""
        shas = await store.generation_parts(conn, channel, number)
        if shas is None:
            if await store.generation(conn, channel, number) is None:
                return Members(())
            await self.upgrade(conn)
            shas = await store.generation_parts(conn, channel, number) or []
        return await self._view(conn, shas)

    async def _view(self, conn: Connection, shas: Sequence[str]) -> Members:
        return Members(tuple([await self._part(conn, sha) for sha in shas]))

    async def members(self, conn: Connection, channel: str, number: int
                      ) -> list[MemberRef]:
        """A generation's members, sorted by name."""
        return (await self.view(conn, channel, number)).all()

    async def _part(self, conn: Connection, sha: str) -> Part:
        cached = self._parts.get(sha)
        if cached is not None:
            return cached
        found = await store.part(conn, sha)
        if found is None:
            raise RepositoryError(f"index part {sha} is listed but not stored")
        made = Part(sha, found[0], tuple(found[1]))
        self._parts[sha] = made
        return made

    def remember(self, sha256: str, entry: bytes) -> None:
        """Cache a package's encoded index entry (immutable: keyed by content hash)."""
        self._entries[sha256] = entry

    async def upgrade(self, conn: Connection) -> int:
        """Cut generations stored before index parts existed into parts (database only: their
        directories keep a format-1 index, which every reader still reads)."""
        uncut = await store.uncut(conn)
        for row, members in uncut:
            parts, _new = await self._store_pieces(conn, cut(sorted(members)))
            await store.set_parts(conn, row.channel, row.generation, [p.sha256 for p in parts])
        return len(uncut)

    async def _write(self, row: store.GenerationRow, parts: Sequence[Part],
                     new: dict[str, bytes]) -> None:
        refs = [PartRef(uri=part_uri(p.sha256), sha256=p.sha256, size=p.size,
                        packages=len(p.members)) for p in parts]
        data = root_bytes(row.channel, row.arch, row.generation, row.created, refs)
        await asyncio.to_thread(gens.write_generation, self.layout, self.key, row.channel,
                                row.arch, row.generation, data, new)

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
            await self.upgrade(conn)
            known = {(g.channel, g.generation): g for g in await store.generations(conn)}
            on_disk = set()
            for entry in gens.scan(self.layout):
                if entry.generation is None or (entry.channel, entry.generation) not in known:
                    await asyncio.to_thread(gens.remove, entry.path)
                    removed.append(entry.path)
                else:
                    on_disk.add((entry.channel, entry.generation))
            for key, row in known.items():
                if await self._rebuild(conn, row, directory=key not in on_disk):
                    rebuilt.append(key)
            referenced = await store.package_hashes(conn)
            dropped = await asyncio.to_thread(pool.collect_garbage, self.layout, referenced)
            await asyncio.to_thread(gens.collect_parts, self.layout,
                                    await store.stored_parts(conn))
            await asyncio.to_thread(_clear, self.layout.tmp)
        await self.sync_current(db)
        return ReconcileReport(tuple(removed), tuple(rebuilt), len(dropped))

    async def prune(self, db: Database) -> PruneReport:
        """Drop generations beyond the policy (never a head), the parts no kept generation
        lists and the packages no kept part lists."""
        keep = self.config.keep_generations
        async with db.transaction() as conn:
            await self.upgrade(conn)
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
            listed = await store.all_parts(conn)
            dropped = {(c, n) for c, _a, n in doomed}
            kept = {tuple(shas) for key, shas in listed.items() if key not in dropped}
            dead = ({sha for key in dropped for sha in listed.get(key, ())}
                    - {sha for shas in kept for sha in shas})
            gone = unlisted([await self._part(conn, sha) for sha in sorted(dead)],
                            [await self._view(conn, shas) for shas in kept])
            await store.delete_generations(conn, dropped)
            await store.delete_parts(conn, dead)
            await store.delete_packages(conn, gone)
            # Unlinked inside the transaction, under the write lock that every publication
            # holds while it writes its files: a publication can never find a part file
            # that is about to vanish. A rollback after this leaves rows without files,
            # which reconcile rewrites.
            for sha in dead:
                self._parts.pop(sha, None)
                await asyncio.to_thread(self.layout.part_file(sha).unlink, True)
            for sha in gone:
                self._entries.pop(sha, None)
                await asyncio.to_thread(self.layout.pool_file(sha).unlink, True)
        for channel, arch, number in doomed:
            path = self.layout.generation_dir(channel, arch, number)
            await asyncio.to_thread(gens.remove, path)
        return PruneReport(tuple((c, n) for c, _a, n in doomed), len(gone))

    async def _rebuild(self, conn: Connection, row: store.GenerationRow, *,
                       directory: bool) -> bool:
        """Rewrite what a committed generation lost: any of its part files, and with
        ``directory`` its root and signature. Whether anything was written."""
        parts = (await self.view(conn, row.channel, row.generation)).parts
        new = {}
        for part in parts:
            if not self.layout.part_file(part.sha256).is_file():
                data = part_bytes(await self._encoded(conn, part.members))
                if part_ref(data, 0).sha256 != part.sha256:
                    raise RepositoryError(f"index part {part.sha256} cannot be rebuilt: its "
                                          "packages encode to other bytes")
                new[part.sha256] = data
        if directory:
            await self._write(row, parts, new)
        elif new:
            await asyncio.to_thread(gens.write_parts, self.layout, new)
        return directory or bool(new)

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
