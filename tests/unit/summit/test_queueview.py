"""The queue page's read models: columns that say what they hold, the search, the focus
view of one task, a drawing whose boxes never share a column slot."""

from __future__ import annotations

from daemon.summit.planning.graph import PublishedIndex
from daemon.summit.planning.planner import Planner
from daemon.summit.planning.queueview import columns, focus, index, layout, select, subgraph
from daemon.summit.planning.states import RepoRef, TaskState
from daemon.summit.planning.views import Graph, Node, queue_graph
from tests.unit.summit.helpers import build, commit_id, entry, tree

REPO = RepoRef(name="recipes", url="https://example.org/recipes.git")


def node(task_id: int, source: str, state: str = "blocked", step: int = 1,
         stuck: bool = False) -> Node:
    return Node(task_id, source, state, "recipes", "x86_64", step, 0, stuck, step)


def test_building_and_publishing_are_columns_of_their_own() -> None:
    graph = Graph((node(1, "gcc", "building", 0), node(2, "glibc", "publishing", 0),
                   node(3, "bash", "ready"), node(4, "zsh", "blocked", 2),
                   node(5, "loop", "blocked", 0, stuck=True)), ())
    found = [(c.title, c.count, c.sample) for c in columns(graph.nodes)]
    assert found == [("building now", 1, ("gcc",)),
                     ("publishing: waiting for the repository", 1, ("glibc",)),
                     ("wave 1: next", 1, ("bash",)), ("wave 2", 1, ("zsh",)),
                     ("cannot start", 1, ("loop",))]
    drawn = layout(graph)
    assert [title for _, title in drawn.columns][:2] == [
        "building now", "publishing: waiting for the repository"]


def test_search_by_part_or_pattern_state_and_column() -> None:
    graph = Graph((node(1, "libfoo"), node(2, "libbar", "ready"), node(3, "foo-tools")), ())
    assert [n.source for n in select(index(graph), pattern="FOO")] == ["foo-tools", "libfoo"]
    assert [n.source for n in select(index(graph), pattern="lib*")] == ["libbar", "libfoo"]
    assert [n.source for n in select(index(graph), state="ready")] == ["libbar"]
    assert select(index(graph), column="wave-2") == []


def planned() -> Planner:
    """a <- b <- c <- d, and e waits for b too (a shortcut d -> a as well)."""
    p = Planner(REPO, PublishedIndex())
    p.plan_tree(tree(commit_id(1), entry("a", 1, [], ["liba"]), entry("b", 1, ["liba"], ["libb"]),
                     entry("c", 1, ["libb"], ["libc"]), entry("d", 1, ["libc", "liba"]),
                     entry("e", 1, ["libb"]), entry("x", 1, [], ["libx"]),
                     entry("y", 1, ["libx"])))
    return p


def test_focus_draws_ancestors_and_descendants_with_only_their_edges() -> None:
    graph = queue_graph([planned()])
    ids = {n.source: n.task_id for n in graph.nodes}
    name = {v: k for k, v in ids.items()}
    around = focus(index(graph), ids["c"])
    assert around is not None
    assert (around.ancestors, around.descendants, around.cut) == (2, 1, 0)
    assert {n.source for n in around.graph.nodes} == {"a", "b", "c", "d"}
    # d -> a is a shortcut from a descendant to an ancestor: not an edge of c's.
    assert {(name[a], name[b]) for a, b in around.graph.edges} == {
        ("b", "a"), ("c", "b"), ("d", "c")}
    assert focus(index(graph), 10**9) is None


def test_focus_is_cut_to_the_nearest_when_large() -> None:
    p = Planner(REPO, PublishedIndex())
    p.plan_tree(tree(commit_id(1), entry("s0", 1, [], ["lib0"]), *(
        entry(f"s{i}", 1, [f"lib{i - 1}"], [f"lib{i}"]) for i in range(1, 200))))
    graph = queue_graph([p])
    ids = {n.source: n.task_id for n in graph.nodes}
    around = focus(index(graph), ids["s100"], limit=21)
    assert around is not None
    assert {n.source for n in around.graph.nodes} == {f"s{i}" for i in range(90, 111)}
    assert (around.ancestors, around.descendants, around.cut) == (100, 99, 179)


def test_a_drawing_places_no_two_boxes_alike_and_a_cycle_in_one_column() -> None:
    p = Planner(REPO, PublishedIndex())
    p.plan_tree(tree(commit_id(1), entry("a", 1, ["libb"], ["liba"]),
                     entry("b", 1, ["liba"], ["libb"]), entry("c", 1, ["liba"], ["libc"]),
                     entry("d", 1, ["libc"])))
    graph = queue_graph([p])
    drawn = layout(subgraph(index(graph), (n.task_id for n in graph.nodes)))
    spots = [(placed.x, placed.y) for placed in drawn.nodes]
    assert len(set(spots)) == len(spots) == 4
    x = {placed.node.source: placed.x for placed in drawn.nodes}
    assert x["a"] == x["b"] < x["c"] < x["d"]
    assert [title for _, title in drawn.columns] == [
        "cannot start", "cannot start (2)", "cannot start (3)"]


def test_a_publishing_task_is_not_shown_as_building() -> None:
    p = planned()
    a = p.latest("a")
    assert a is not None
    build(p, a)
    assert p.tasks[a.task_id].state is TaskState.PUBLISHING
    [first, *_] = columns(queue_graph([p]).nodes)
    assert (first.title, first.sample) == ("publishing: waiting for the repository", ("a",))
