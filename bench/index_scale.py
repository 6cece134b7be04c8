"""How long does vessel take to publish one build into a channel of N packages?

For each size of ``--packages`` (default 5,000 and 50,000, in one invocation): seeds a channel
with that many packages (rows and a signed generation, no archives: publishing never reads
old archives), then imports ``--runs`` successive builds of one more source through the real
path: HTTP download from a local server, archive inspection, pool placement, SQLite
transaction, the new index parts and root (index.json, minisign signature, fsyncs),
``current`` switch and pruning. The sizes take turns, one publication each per round (see
:func:`run`). Prints per-run figures, the bytes of index each generation added (its root plus
the parts no earlier generation had), the medians (wall time to ``current``, and the
process's CPU time over the same span: the figure to compare on a loaded machine), the
ratio of the largest size's figures to the smallest's, and a JSON line.

    .venv/bin/python bench/index_scale.py --packages 5000 50000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
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


@dataclass
class Sample:
    """One publication: wall milliseconds to ``current`` and to the end (pruning included),
    the process's CPU milliseconds to ``current``, and the bytes of index it added."""

    published_ms: float
    with_prune_ms: float
    cpu_ms: float
    added: int


class Seeded:
    """One seeded repository of ``packages`` packages, publishing one build at a time."""

    def __init__(self, packages: int, repo: Repository, db: Database,
                 server: ArtefactServer) -> None:
        self.packages = packages
        self.db, self.server = db, server
        self.index = repo.config.layout.current("volatile", "x86_64") / "index.json"
        self.seen: set[str] = set()
        added_bytes(self.index, self.seen)
        self.switched: tuple[float, float] = (0.0, 0.0)
        self.importer = Importer(repo, on_step=self._on_step)
        self.samples: list[Sample] = []

    def _on_step(self, step: str) -> None:
        if step == "switched":
            self.switched = (time.perf_counter(), time.process_time())

    async def publish(self, release: int) -> Sample:
        pkg = Pkg(name="newpkg", release=release, files={"usr/bin/newpkg": b"v%d" % release})
        build = build_done([self.server.add(pkg)], source="newpkg", release=release,
                           task_id=release)

        async def emit(_conn: Connection, outcome: ImportOutcome) -> None:
            if outcome.refused is not None:
                raise SystemExit(f"import refused: {outcome.refused}")

        t0, cpu0 = time.perf_counter(), time.process_time()
        outcome = await self.importer.import_build(self.db, build, emit)
        done = time.perf_counter()
        assert outcome.published is not None
        sample = Sample((self.switched[0] - t0) * 1000, (done - t0) * 1000,
                        (self.switched[1] - cpu0) * 1000, added_bytes(self.index, self.seen))
        self.samples.append(sample)
        print(f"{self.packages + 1} packages, generation {outcome.published.generation}: "
              f"current switched after {sample.published_ms:.1f} ms "
              f"({sample.cpu_ms:.1f} ms CPU), {sample.with_prune_ms:.1f} ms with pruning, "
              f"{sample.added} bytes of index added")
        return sample

    def result(self) -> dict[str, object]:
        published = [s.published_ms for s in self.samples]
        pruned = [s.with_prune_ms for s in self.samples]
        return {
            "packages": self.packages + 1, "runs": len(self.samples),
            "median_ms": round(statistics.median(published), 1),
            "max_ms": round(max(published), 1), "min_ms": round(min(published), 1),
            "median_cpu_ms": round(statistics.median(s.cpu_ms for s in self.samples), 1),
            "median_with_prune_ms": round(statistics.median(pruned), 1),
            "max_with_prune_ms": round(max(pruned), 1),
            "bytes_per_generation": round(statistics.median(s.added for s in self.samples)),
        }


async def run(args: argparse.Namespace, sizes: list[int]) -> list[dict[str, object]]:
    """Seed every size, then publish into each in turn, round after round.

    Why interleaved: the machine is shared, and its load drifts over the seconds a series
    takes; publishing into every size within each round gives each the same load, so their
    ratio measures the repository's size and not the moment. Each round starts with another
    size, so that none always runs right after a larger one's pruning.
    """
    async with contextlib.AsyncExitStack() as stack:
        seeded = []
        for packages in sizes:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="cairn-bench-"))
            config = VesselConfig(state_dir=Path(tmp) / "vessel", keep_generations=args.keep)
            repo = Repository.open(config)
            db = await stack.enter_async_context(
                Database.open(config.layout.db, store.MIGRATIONS))
            server = await stack.enter_async_context(ArtefactServer().running())
            started = time.perf_counter()
            await seed(repo, db, packages)
            print(f"seeded {packages} packages in {time.perf_counter() - started:.2f} s")
            seeded.append(Seeded(packages, repo, db, server))
        for release in range(1, args.runs + 1):
            shift = release % len(seeded)
            for each in seeded[shift:] + seeded[:shift]:
                await each.publish(release)
        return [each.result() for each in seeded]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", type=int, nargs="+", default=[5_000, 50_000])
    parser.add_argument("--runs", type=int, default=41,
                        help="publications into each size (the median is reported)")
    parser.add_argument("--keep", type=int, default=10, help="generations kept (pruning cost)")
    args = parser.parse_args()
    sizes = sorted(args.packages)
    results = asyncio.run(run(args, sizes))
    small, large = results[0], results[-1]
    ratio = {key: round(float(large[key]) / max(float(small[key]), 1e-9), 2)  # type: ignore[arg-type]
             for key in ("median_ms", "median_cpu_ms", "bytes_per_generation")}
    for result in results:
        print(f"{result['packages']} packages: one publication {result['median_ms']} ms "
              f"({result['median_cpu_ms']} ms CPU; median of {result['runs']}), "
              f"{result['bytes_per_generation']} bytes of index per generation")
    print(f"{large['packages']} vs {small['packages']} packages: time x{ratio['median_ms']}, "
          f"CPU x{ratio['median_cpu_ms']}, bytes x{ratio['bytes_per_generation']} (target: "
          f"at most x{TARGET_RATIO}; one publication < {TARGET_MS} ms; load average "
          f"{os.getloadavg()[0]:.1f})")
    print(json.dumps({"benchmark": "index_scale", "results": results, "ratio": ratio,
                      "target_ms": TARGET_MS, "target_ratio": TARGET_RATIO,
                      "load_average": round(os.getloadavg()[0], 1)}))


if __name__ == "__main__":
    main()
