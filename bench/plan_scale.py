"""Benchmark: plan a generated 50,000-recipe tree, then incremental ten-recipe commits.

The tree is written straight into a bare git repository with pygit2 (stone.yaml plus a
manifest per recipe, 1,000 recipes per directory). Dependencies have a realistic fan-in:
most recipes depend on a few of a small set of core libraries (preferential attachment) plus
a few arbitrary earlier recipes; a few small toolchain cycles and self-dependencies exist.

Figures: the first full plan (read the tree from git + plan; target < 20 s, peak RSS < 1 GB),
and, per commit changing 10 recipes, the time from commit-seen handled (tree diff read from
git) to task-ready decided (``Planner.plan_delta`` returned): p50 target < 100 ms. Incremental
commits are measured twice: on a published tree (the steady state), and on the tree right
after its first plan with nothing published (every recipe still has an open task).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pygit2

from daemon.summit.gitrepo import Mirror
from daemon.summit.planning.graph import PublishedIndex
from daemon.summit.planning.planner import Planner
from daemon.summit.planning.states import RepoRef

SIG = pygit2.Signature("bench", "bench@example.org")
GROUP = 1000


def stone(i: int, release: int, deps: list[str]) -> bytes:
    body = [f"name: s{i}", "version: '1.0'", f"release: {release}", "summary: generated",
            "license: [MIT]", "builddeps:"] + [f"    - {d}" for d in deps]
    if not deps:
        body.pop()
    return ("\n".join([*body, "build: |\n    make\n"])).encode()


def manifest(i: int) -> bytes:
    provides = [f'"pkgconfig(s{i})"', f'"soname(libs{i}.so.1(x86_64))"', f'"binary(s{i})"']
    return (f'/* generated */\n{{"manifest-version": "0.2", "packages": {{"s{i}": {{'
            f'"name": "s{i}", "provides": [{", ".join(provides)}], "depends": [], '
            f'"build-depends": [], "files": ["/usr/lib/libs{i}.so.1"]}}, "s{i}-devel": {{'
            f'"name": "s{i}-devel", "provides": [], "depends": ["s{i}"]}}}}}}').encode()


def dependencies(n: int, rng: random.Random) -> list[list[str]]:
    core = 200
    deps: list[list[str]] = [[] for _ in range(n)]
    for i in range(1, n):
        chosen: set[int] = set()
        for _ in range(rng.randint(0, 4)):
            chosen.add(min(int(rng.paretovariate(1.2)) - 1, min(i, core) - 1))
        for _ in range(rng.randint(0, 3)):
            chosen.add(rng.randrange(i))
        deps[i] = [rng.choice([f"pkgconfig(s{d})", f"binary(s{d})", f"s{d}-devel"])
                   for d in sorted(chosen)]
    for a in range(10, 60, 10):  # toolchain-like cycles: a <-> a+1 <-> a+2, self-deps
        deps[a].append(f"pkgconfig(s{a + 2})")
        deps[a + 5].append(f"binary(s{a + 5})")
    return deps


def recipe_tree(repo: Any, i: int, release: int, deps: list[str]) -> Any:
    builder = repo.TreeBuilder()
    blob = repo.create_blob(stone(i, release, deps))
    builder.insert("stone.yaml", blob, pygit2.GIT_FILEMODE_BLOB)
    builder.insert("manifest.x86_64.jsonc", repo.create_blob(manifest(i)),
                   pygit2.GIT_FILEMODE_BLOB)
    return builder.write()


def generate(path: Path, n: int, rng: random.Random) -> tuple[Any, list[list[str]], list[int]]:
    repo = pygit2.init_repository(str(path), bare=True)
    deps = dependencies(n, rng)
    releases = [1] * n
    root = repo.TreeBuilder()
    for g in range(0, n, GROUP):
        group = repo.TreeBuilder()
        for i in range(g, min(g + GROUP, n)):
            group.insert(f"s{i}", recipe_tree(repo, i, 1, deps[i]), pygit2.GIT_FILEMODE_TREE)
        root.insert(f"g{g // GROUP}", group.write(), pygit2.GIT_FILEMODE_TREE)
    repo.create_commit("refs/heads/main", SIG, SIG, "tree", root.write(), [])
    # A fetched mirror is packed; 100,000 loose objects would measure the file system instead.
    subprocess.run(["git", "-C", str(path), "repack", "-adq"], check=True)
    return pygit2.Repository(str(path)), deps, releases


def bump(repo: Any, deps: list[list[str]], releases: list[int], rng: random.Random,
         count: int) -> tuple[str, str]:
    head = repo.references["refs/heads/main"].peel(pygit2.Commit)
    root = repo.TreeBuilder(head.tree)
    groups: dict[int, Any] = {}
    for i in rng.sample(range(len(deps)), count):
        releases[i] += 1
        g = i // GROUP
        if g not in groups:
            groups[g] = repo.TreeBuilder(head.tree[f"g{g}"])
        groups[g].insert(f"s{i}", recipe_tree(repo, i, releases[i], deps[i]),
                         pygit2.GIT_FILEMODE_TREE)
    for g, builder in groups.items():
        root.insert(f"g{g}", builder.write(), pygit2.GIT_FILEMODE_TREE)
    new = repo.create_commit("refs/heads/main", SIG, SIG, "bump", root.write(), [head.id])
    return str(head.id), str(new)


def incremental(mirror: Mirror, planner: Planner, repo: Any, deps: list[list[str]],
                releases: list[int], rng: random.Random, commits: int) -> list[float]:
    times, reads = [], []
    for _ in range(commits):
        old, new = bump(repo, deps, releases, rng, 10)
        t0 = time.perf_counter()
        delta = mirror.read_delta(old, new, "x86_64")  # commit-seen handled: read the diff
        reads.append(time.perf_counter() - t0)
        decision = planner.plan_delta(delta)  # ... to task-ready decided
        times.append(time.perf_counter() - t0)
        assert len(delta.changed) == 10 and decision.tasks
    print(f"  of which reading the diff from git: p50 {statistics.median(reads) * 1000:.1f} ms")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recipes", type=int, default=50_000)
    parser.add_argument("--commits", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as scratch:
        t = time.perf_counter()
        repo, deps, releases = generate(Path(scratch) / "recipes.git", args.recipes, rng)
        print(f"generated {args.recipes} recipes in {time.perf_counter() - t:.1f}s")
        mirror = Mirror.local(Path(scratch) / "recipes.git")
        head = mirror.head("main")

        t0, c0 = time.perf_counter(), time.process_time()
        tree = mirror.read_tree(head, "x86_64")
        t1 = time.perf_counter()
        planner = Planner(RepoRef(name="bench", url=scratch))
        first = planner.plan_tree(tree)
        t2, c2 = time.perf_counter(), time.process_time()
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"first full plan: read {t1 - t0:.2f}s + plan {t2 - t1:.2f}s = {t2 - t0:.2f}s, "
              f"{len(first.tasks)} tasks, {len(first.ready)} ready, peak RSS {rss_mb:.0f} MB "
              f"(CPU {c2 - c0:.2f}s)")

        published = PublishedIndex()
        for entry in tree.entries.values():
            if entry.recipe is not None:
                published.add(entry.recipe.name, entry.recipe.release, entry.providers)
        steady = Planner(RepoRef(name="bench", url=scratch), published)
        steady.plan_tree(tree)
        del tree
        steady_times = incremental(mirror, steady, repo, deps, releases, rng, args.commits)
        busy_times = incremental(mirror, planner, repo, deps, releases, rng, args.commits)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def ms(values: list[float], q: float) -> float:
        return round(statistics.quantiles(values, n=100)[int(q) - 1] * 1000, 2)

    for label, values in (("published tree", steady_times), ("all open", busy_times)):
        print(f"incremental 10-recipe commit ({label}): p50 {ms(values, 50)} ms, "
              f"p95 {ms(values, 95)} ms, max {max(values) * 1000:.1f} ms")
    print(json.dumps({
        "benchmark": "plan_scale", "recipes": args.recipes,
        "first_plan_s": round(t2 - t0, 3), "first_read_s": round(t1 - t0, 3),
        "first_plan_cpu_s": round(c2 - c0, 3),  # what a busy machine does not inflate
        "first_plan_only_s": round(t2 - t1, 3), "peak_rss_mb": round(rss_mb, 1),
        "incremental_p50_ms": ms(steady_times, 50), "incremental_p95_ms": ms(steady_times, 95),
        "incremental_all_open_p50_ms": ms(busy_times, 50),
        "incremental_all_open_p95_ms": ms(busy_times, 95),
        "targets": {"first_plan_s": 20, "peak_rss_mb": 1024, "incremental_p50_ms": 100},
    }))


if __name__ == "__main__":
    main()
