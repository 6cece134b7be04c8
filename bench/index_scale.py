"""How long does vessel take to publish one build into a channel of N packages?

Seeds a channel with ``--packages`` packages (rows and a signed generation, no archives:
publishing never reads old archives), then imports ``--runs`` successive builds of one more
source through the real path: HTTP download from a local server, archive inspection, pool
placement, SQLite transaction, new generation directory (index.json, .zst, minisign
signature, fsyncs), ``current`` switch and pruning. Prints per-run figures and a JSON line.

    .venv/bin/python bench/index_scale.py --packages 50000
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from daemon.package import IndexEntry
from daemon.vessel import store
from daemon.vessel.config import VesselConfig, pool_uri
from daemon.vessel.importer import Importer, ImportOutcome
from daemon.vessel.index import encode_entry
from daemon.vessel.repository import Repository
from events.sqlite import Connection, Database
from tests.unit.vessel.builders import ArtefactServer, Pkg, build_done


async def seed(repo: Repository, db: Database, count: int) -> None:
    rows, members = [], []
    for i in range(count):
        name = f"pkg{i:06d}"
        sha = hashlib.sha256(name.encode()).hexdigest()
        entry = IndexEntry(name=name, version="1.0", release=1, build_release=1, arch="x86_64",
                           source=name, summary=f"synthetic package {i}",
                           depends=["soname(libc.so.6(x86_64))", f"name(pkg{i // 2:06d})"],
                           provides=[f"name({name})", f"soname(lib{name}.so.1(x86_64))"],
                           uri=pool_uri(sha), sha256=sha, size=10_000 + i)
        rows.append((sha, name, name, 1, 1, entry.size, encode_entry(entry)))
        members.append((name, name, sha))
    async with db.transaction() as conn:
        await conn.executemany(
            "INSERT INTO vessel_packages (sha256, name, source, release, build_release, size, "
            "entry) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        await repo.publish(conn, "volatile", "x86_64", members, origin="benchmark seed")
    await repo.sync_current(db)


async def run(args: argparse.Namespace) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="cairn-bench-") as tmp:
        config = VesselConfig(state_dir=Path(tmp) / "vessel", keep_generations=args.keep)
        repo = Repository.open(config)
        async with Database.open(config.layout.db, store.MIGRATIONS) as db, \
                ArtefactServer().running() as server:
            started = time.perf_counter()
            await seed(repo, db, args.packages)
            print(f"seeded {args.packages} packages in {time.perf_counter() - started:.2f} s")
            switched: list[float] = []
            importer = Importer(repo, on_step=lambda step: switched.append(time.perf_counter())
                                if step == "switched" else None)
            timings: list[float] = []
            published: list[float] = []

            async def emit(_conn: Connection, outcome: ImportOutcome) -> None:
                if outcome.refused is not None:
                    raise SystemExit(f"import refused: {outcome.refused}")

            for release in range(1, args.runs + 1):
                pkg = Pkg(name="newpkg", release=release,
                          files={"usr/bin/newpkg": b"v%d" % release})
                build = build_done([server.add(pkg)], source="newpkg", release=release,
                                   task_id=release)
                t0 = time.perf_counter()
                outcome = await importer.import_build(db, build, emit)
                timings.append((time.perf_counter() - t0) * 1000)
                published.append((switched[-1] - t0) * 1000)
                assert outcome.published is not None
                print(f"publication {release}: generation {outcome.published.generation}: "
                      f"current switched after {published[-1]:.1f} ms, "
                      f"{timings[-1]:.1f} ms with pruning")
            index = config.layout.current("volatile", "x86_64") / "index.json"
            size = index.stat().st_size
            zst = index.with_name("index.json.zst").stat().st_size
    return {
        "benchmark": "index_scale", "packages": args.packages + 1, "runs": args.runs,
        "median_ms": round(statistics.median(published), 1),
        "max_ms": round(max(published), 1), "min_ms": round(min(published), 1),
        "median_with_prune_ms": round(statistics.median(timings), 1),
        "max_with_prune_ms": round(max(timings), 1),
        "index_bytes": size, "index_zst_bytes": zst,
        "target_ms": 300, "meets_target": statistics.median(published) < 300,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--keep", type=int, default=10, help="generations kept (pruning cost)")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
