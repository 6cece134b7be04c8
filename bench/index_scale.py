"""How long does vessel take to publish one build into a channel of N packages?

For each size of ``--packages`` (default 5,000 and 50,000, in one invocation): seeds a channel
with that many packages (rows and a signed generation, no archives: publishing never reads
old archives), then imports ``--runs`` successive builds of one more source through the real
path: HTTP download from a local server, archive inspection, pool placement, SQLite
transaction, the new index parts and root (index.json, minisign signature, fsyncs),
``current`` switch and pruning. Prints per-run figures, the bytes of index each generation
added (its root plus the parts no earlier generation had), the ratio of the largest size's
figures to the smallest's, and a JSON line.

    .venv/bin/python bench/index_scale.py --packages 5000 50000
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

from daemon.formats.index import IndexRoot, read_root
from daemon.package import IndexEntry
from daemon.vessel import store
from daemon.vessel.config import VesselConfig, pool_uri
from daemon.vessel.importer import Importer, ImportOutcome
from daemon.vessel.index import encode_entry
from daemon.vessel.repository import Repository
from events.sqlite import Connection, Database
from tests.unit.vessel.builders import ArtefactServer, Pkg, build_done

TARGET_MS = 50
TARGET_RATIO = 1.2


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


def added_bytes(root: Path, seen: set[str]) -> int:
    """The bytes of index a generation added: its root and the parts not seen before."""
    decoded = read_root(root.read_bytes())
    assert isinstance(decoded, IndexRoot)
    new = [p for p in decoded.parts if p.sha256 not in seen]
    seen.update(p.sha256 for p in new)
    return root.stat().st_size + sum(p.size for p in new)


async def run(args: argparse.Namespace, packages: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="cairn-bench-") as tmp:
        config = VesselConfig(state_dir=Path(tmp) / "vessel", keep_generations=args.keep)
        repo = Repository.open(config)
        async with Database.open(config.layout.db, store.MIGRATIONS) as db, \
                ArtefactServer().running() as server:
            started = time.perf_counter()
            await seed(repo, db, packages)
            print(f"seeded {packages} packages in {time.perf_counter() - started:.2f} s")
            index = config.layout.current("volatile", "x86_64") / "index.json"
            seen: set[str] = set()
            added_bytes(index, seen)
            added: list[int] = []
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
                added.append(added_bytes(index, seen))
                assert outcome.published is not None
                print(f"publication {release}: generation {outcome.published.generation}: "
                      f"current switched after {published[-1]:.1f} ms, "
                      f"{timings[-1]:.1f} ms with pruning, {added[-1]} bytes of index added")
    return {
        "packages": packages + 1, "runs": args.runs,
        "median_ms": round(statistics.median(published), 1),
        "max_ms": round(max(published), 1), "min_ms": round(min(published), 1),
        "median_with_prune_ms": round(statistics.median(timings), 1),
        "max_with_prune_ms": round(max(timings), 1),
        "bytes_per_generation": round(statistics.median(added)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", type=int, nargs="+", default=[5_000, 50_000])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--keep", type=int, default=10, help="generations kept (pruning cost)")
    args = parser.parse_args()
    sizes = sorted(args.packages)
    results = [asyncio.run(run(args, n)) for n in sizes]
    small, large = results[0], results[-1]
    ratio = {key: round(float(large[key]) / max(float(small[key]), 1e-9), 2)  # type: ignore[arg-type]
             for key in ("median_ms", "bytes_per_generation")}
    for result in results:
        print(f"{result['packages']} packages: one publication {result['median_ms']} ms "
              f"(median of {result['runs']}), {result['bytes_per_generation']} bytes of index "
              "per generation")
    print(f"{large['packages']} vs {small['packages']} packages: time x{ratio['median_ms']}, "
          f"bytes x{ratio['bytes_per_generation']} (target: at most x{TARGET_RATIO}; "
          f"one publication < {TARGET_MS} ms)")
    print(json.dumps({"benchmark": "index_scale", "results": results, "ratio": ratio,
                      "target_ms": TARGET_MS, "target_ratio": TARGET_RATIO}))


if __name__ == "__main__":
    main()
