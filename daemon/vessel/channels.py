"""Channel operations an operator runs while vessel serves: promote and roll back.

Both publish a *new* generation (promote: another channel's packages; rollback: an older
generation's packages). Generation numbers only grow, so a client that remembers the highest
one it verified (``cairn channel verify``) can tell a rollback by the operator (a newer index)
from an old signed index replayed by whoever serves the repository (an older one).

Why they are safe next to a running vessel: they use the same SQLite database (its write
lock serialises them with imports, across processes), publish through the same
:meth:`Repository.publish` (directory written inside the transaction), and move ``current``
through the same file-locked :meth:`Repository.sync_current` after the commit.
"""

from __future__ import annotations

from dataclasses import dataclass

from daemon.vessel import store
from daemon.vessel.config import check_channel
from daemon.vessel.errors import RepositoryError
from daemon.vessel.repository import Repository
from events.sqlite import Database


@dataclass(frozen=True)
class Promoted:
    arch: str
    from_generation: int
    generation: int


async def promote(repo: Repository, db: Database, source: str, target: str) -> list[Promoted]:
    """Copy every arch's current generation of ``source`` into a new generation of ``target``."""
    check_channel(source)
    check_channel(target)
    if source == target:
        raise RepositoryError("promote needs two different channels")
    done: list[Promoted] = []
    async with db.transaction() as conn:
        heads = [(a, g) for c, a, g in await store.heads(conn) if c == source]
        if not heads:
            raise RepositoryError(f"channel {source!r} has no published generation to promote")
        for arch, number in sorted(heads):
            members = await repo.members(conn, source, number)
            new = await repo.publish(conn, target, arch, members,
                                     origin=f"promoted from {source} generation {number}")
            done.append(Promoted(arch, number, new))
    await repo.sync_current(db, [(target, p.arch) for p in done])
    await repo.prune(db)
    return done


@dataclass(frozen=True)
class RolledBack:
    arch: str
    #: The kept generation whose packages are current again.
    from_generation: int
    #: The new generation that publishes them.
    generation: int


async def rollback(repo: Repository, db: Database, channel: str,
                   generation: int) -> RolledBack:
    """Publish the packages of ``generation`` (kept, not pruned) as a new current generation."""
    check_channel(channel)
    async with db.transaction() as conn:
        row = await store.generation(conn, channel, generation)
        if row is None:
            kept = [g.generation for g in await store.generations(conn, channel)]
            raise RepositoryError(
                f"channel {channel!r} has no generation {generation} (kept: "
                f"{', '.join(map(str, kept)) or 'none'}); pruned generations cannot return")
        members = await repo.members(conn, channel, generation)
        new = await repo.publish(conn, channel, row.arch, members,
                                 origin=f"rolled back to generation {generation}")
    await repo.sync_current(db, [(channel, row.arch)])
    await repo.prune(db)
    return RolledBack(row.arch, generation, new)
