"""Critical paths kept up to date event by event equal the ones computed from scratch."""

from __future__ import annotations

import random

import pytest

from daemon.summit.planning.graph import PublishedIndex, longest_chains
from daemon.summit.planning.planner import Planner
from daemon.summit.planning.states import PENDING, RepoRef
from daemon.summit.planning.tree import RecipeDelta
from events.payloads import PackagePublished, PublishedPackage
from tests.unit.summit.helpers import build, commit_id, entry, tree

REPO = RepoRef(name="recipes", url="https://example.org/recipes.git")
N = 120


def _from_scratch(p: Planner) -> dict[str, int]:
    schedule = p.schedule
    pending = [t.source for t in p.open_tasks() if t.state in PENDING]
    return longest_chains(pending, schedule.effective_dependents, schedule.effective_deps, {})


def _check(p: Planner) -> None:
    expected = _from_scratch(p)
    assert {s: p.critical_path(s) for s in expected} == expected


def _deps(rng: random.Random, i: int) -> list[str]:
    # Mostly recent recipes (long chains), some old ones (wide fan-in), now and then a
    # later one (a cycle).
    deps = {f"s{max(0, i - rng.randint(1, 4))}" for _ in range(rng.randint(0, 2))} if i else set()
    if i and rng.random() < 0.3:
        deps.add(f"s{rng.randrange(i)}")
    if rng.random() < 0.03:
        deps.add(f"s{rng.randrange(N)}")
    return sorted(deps)


@pytest.mark.parametrize("seed", range(8))
def test_critical_paths_after_each_event_equal_a_full_computation(seed: int) -> None:
    rng = random.Random(seed)
    published = PublishedIndex()
    for i in range(N):
        if rng.random() < 0.3:
            published.add(f"s{i}", 1, [f"s{i}"])
    p = Planner(REPO, published)
    recipes = {f"s{i}": entry(f"s{i}", 2, _deps(rng, i)) for i in range(N)}
    p.plan_tree(tree(commit_id(1), *recipes.values()))
    _check(p)
    for step in range(80):
        ready = [t for t in p.open_tasks() if t.state.value == "ready" and t.builder is None]
        if ready and rng.random() < 0.7:
            task = rng.choice(ready)
            build(p, task)
            p.on_package_published(PackagePublished(
                task_id=task.task_id, source=task.source, release=task.release,
                build_release=1, arch="x86_64", channel="volatile", generation=step,
                packages=[PublishedPackage(name=task.source, version="1",
                                           release=task.release, build_release=1,
                                           sha256="0" * 64, provides=[])]))
        else:  # a commit: a few recipes get new dependencies and a new release
            changed = {}
            for name in rng.sample(sorted(recipes), 3):
                i = int(name[1:])
                old = recipes[name].recipe
                assert old is not None
                recipes[name] = changed[f"r/{name}"] = entry(name, old.release + 1,
                                                             _deps(rng, i))
            p.plan_delta(RecipeDelta(commit_id(step + 1), commit_id(step + 2), changed))
        _check(p)
