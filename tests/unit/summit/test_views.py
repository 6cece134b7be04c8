"""Blockers in words and the queue graph, from real planners over real recipe trees."""

from __future__ import annotations

from daemon.summit.planning.graph import PublishedIndex
from daemon.summit.planning.planner import Planner
from daemon.summit.planning.queueview import layout
from daemon.summit.planning.states import RepoRef, Task, TaskState
from daemon.summit.planning.views import counts, cycle_walk, explain_task, queue_graph
from events.payloads import Outcome
from tests.unit.summit.helpers import build, commit_id, entry, tree

REPO = RepoRef(name="recipes", url="https://example.org/recipes.git")


def open_by_source(p: Planner) -> dict[str, Task]:
    return {t.source: t for t in p.open_tasks()}


def test_dependency_blocker_names_the_task_and_links_it() -> None:
    p = Planner(REPO, PublishedIndex())
    p.plan_tree(tree(commit_id(1), entry("libgreet", 1, [], ["pkgconfig(libgreet)"]),
                     entry("greet", 1, ["pkgconfig(libgreet)"])))
    tasks = open_by_source(p)
    [why] = explain_task(tasks["greet"], p)
    lib = tasks["libgreet"].task_id
    assert why.text == f"waiting for libgreet (task {lib}) to be published"
    assert [part.task_id for part in why.parts if part.task_id] == [lib]
    assert why.to_json()["tasks"] == [lib]


def test_cycle_blocker_walks_the_cycle() -> None:
    p = Planner(REPO, PublishedIndex())
    p.plan_tree(tree(commit_id(1), entry("a", 1, ["libb"], ["liba"]),
                     entry("b", 1, ["liba"], ["libb"])))
    [why] = explain_task(open_by_source(p)["a"], p)
    assert why.text == "part of cycle a → b → a, nothing published to build against"


def test_cycle_walk_follows_edges_and_gives_up_without_a_cycle() -> None:
    edges = {"a": ["c"], "c": ["b"], "b": ["a"]}
    assert cycle_walk(["a", "b", "c"], edges) == ["a", "c", "b", "a"]
    assert cycle_walk(["a", "b"], {"a": ["b"]}) == []
    assert cycle_walk(["gcc"], {}) == ["gcc", "gcc"]


def test_unresolvable_and_failed_blockers() -> None:
    p = Planner(REPO, PublishedIndex())
    p.plan_tree(tree(commit_id(1), entry("lonely", 1, ["pkgconfig(foo)"]),
                     entry("base", 1, [], ["libbase"]), entry("user", 1, ["libbase"])))
    tasks = open_by_source(p)
    assert [e.text for e in explain_task(tasks["lonely"], p)] == [
        "nothing provides pkgconfig(foo)"]
    base = tasks["base"]
    build(p, base, Outcome.FAILED, reason="make: *** [all] Error 2")
    user = p.tasks[tasks["user"].task_id]
    [why] = explain_task(user, p)
    assert why.text == (f"depends on failed task {base.task_id} (base): "
                        "failed: make: *** [all] Error 2")


def test_queue_graph_columns_and_edges() -> None:
    p = Planner(REPO, PublishedIndex())
    p.plan_tree(tree(commit_id(1), entry("a", 1, [], ["liba"]), entry("b", 1, ["liba"], ["libb"]),
                     entry("c", 1, ["liba"]), entry("d", 1, ["libb"]),
                     entry("stuck", 1, ["nothing-provides-this"])))
    graph = queue_graph([p])
    wave = {n.source: n.wave for n in graph.nodes}
    assert wave["a"] == 0 and wave["b"] == wave["c"] == 1 and wave["d"] == 2
    assert wave["stuck"] == 3 and [n.stuck for n in graph.nodes if n.source == "stuck"] == [True]
    ids = {n.source: n.task_id for n in graph.nodes}
    assert sorted(graph.edges) == sorted([(ids["b"], ids["a"]), (ids["c"], ids["a"]),
                                          (ids["d"], ids["b"])])
    drawn = layout(graph)
    assert [title for _, title in drawn.columns] == ["wave 1: next", "wave 2", "wave 3",
                                                    "cannot start"]
    x = {p.node.source: p.x for p in drawn.nodes}
    assert x["a"] < x["b"] == x["c"] < x["d"] < x["stuck"]
    assert len(drawn.edges) == 3


def test_counts_lists_every_state() -> None:
    p = Planner(REPO, PublishedIndex())
    p.plan_tree(tree(commit_id(1), entry("a", 1)))
    found = counts(p.tasks.values())
    assert list(found) == list(TaskState)
    assert found["ready"] == 1 and sum(found.values()) == 1
