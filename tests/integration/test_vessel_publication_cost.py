"""A publication writes what it changed, not the repository: counted in database pages."""

from __future__ import annotations

import hashlib
from pathlib import Path

from daemon.package import IndexEntry
from daemon.vessel.config import pool_uri
from daemon.vessel.index import encode_entry
from tests.integration.vessel_env import Env, environment, import_pkgs
from tests.unit.vessel.builders import Pkg

#: Pages one import may write into the WAL, its pruning included (measured: ~55 without
#: pruning, ~100 with): the new part (~500 members, ~10 overflow pages), its package,
#: provides, import, outbox, generation and head rows and the b-tree pages above them; then
#: the pruned generation, part and package. A row per (part, package) made the publication
#: alone ~300 pages at 5,000 packages and ~800 at 50,000: its rows went all over the tree.
PAGES = 150


async def seed(env: Env, count: int) -> None:
    rows, members = [], []
    for i in range(count):
        name = f"pkg{i:06d}"
        sha = hashlib.sha256(name.encode()).hexdigest()
        entry = IndexEntry(name=name, version="1.0", release=1, build_release=1, arch="x86_64",
                           source=name, summary="seeded", depends=[], provides=[],
                           uri=pool_uri(sha), sha256=sha, size=1)
        rows.append((sha, name, name, 1, 1, 1, encode_entry(entry)))
        members.append((name, name, sha))
    async with env.db.transaction() as conn:
        await conn.executemany(
            "INSERT INTO vessel_packages (sha256, name, source, release, build_release, size, "
            "entry) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        await env.repo.publish(conn, "volatile", "x86_64", members, origin="seed")
    await env.repo.sync_current(env.db)


async def wal_pages(env: Env, release: int) -> int:
    """The pages the import of one more release wrote (the WAL emptied just before)."""
    row = await env.db.fetchone("PRAGMA wal_checkpoint(TRUNCATE)")
    assert row is not None and row[0] == 0  # not busy: the WAL is empty now
    await import_pkgs(env, [Pkg(name="pkg002500", release=release,
                                files={"usr/bin/x": b"v%d" % release})],
                      release=release, task_id=release)
    wal = Path(env.db.path + "-wal").stat().st_size
    return max(0, (wal - 32) // (4096 + 24))


async def test_a_publication_into_thousands_of_packages_writes_a_few_pages(
        tmp_path: Path) -> None:
    async with environment(tmp_path, keep_generations=2) as env:
        await seed(env, 6_000)
        pages = [await wal_pages(env, release) for release in range(2, 7)]
        assert env.current_index().generation == 6
        # From the fourth on, each publication prunes one generation too.
        assert all(0 < p < PAGES for p in pages), pages
