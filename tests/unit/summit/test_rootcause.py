"""Blocked tasks grouped by root cause, from real planners over real recipe trees."""

from __future__ import annotations

from daemon.summit.planning.graph import PublishedIndex
from daemon.summit.planning.planner import Planner
from daemon.summit.planning.rootcause import CauseKind, Hold, root_causes
from daemon.summit.planning.states import RepoRef, Task
from events.payloads import Outcome
from tests.unit.summit.helpers import build, commit_id, entry, tree

REPO = RepoRef(name="recipes", url="https://example.org/recipes.git")


def ids(p: Planner, *sources: str) -> tuple[int, ...]:
    latest = {s: p.latest(s) for s in sources}
    return tuple(sorted(t.task_id for t in latest.values() if t is not None))


def planned() -> Planner:
    """A cycle (a, b) with two tasks behind it, a failure (base) with a chain of two behind
    it, one task behind both, a name nothing provides, and a plain dependency (lib, app)."""
    p = Planner(REPO, PublishedIndex())
    p.plan_tree(tree(
        commit_id(1),
        entry("a", 1, ["libb"], ["liba"]), entry("b", 1, ["liba"], ["libb"]),
        entry("c", 1, ["liba"], ["libc"]), entry("d", 1, ["libc"]),
        entry("base", 1, [], ["libbase"]), entry("user", 1, ["libbase"], ["libuser"]),
        entry("user2", 1, ["libuser"]), entry("both", 1, ["libc", "libuser"]),
        entry("lonely", 1, ["pkgconfig(nowhere)"]),
        entry("lib", 1, [], ["liblib"]), entry("app", 1, ["liblib"])))
    base = p.latest("base")
    assert base is not None
    build(p, base, Outcome.FAILED, reason="make: *** [all] Error 2")
    return p


def test_blocked_tasks_are_grouped_by_what_ultimately_blocks_them() -> None:
    p = planned()
    blockage = root_causes([p])
    by_kind = {g.cause.kind: g for g in blockage.groups}
    assert set(by_kind) == {CauseKind.CYCLE, CauseKind.FAILED, CauseKind.UNRESOLVABLE}
    cycle = by_kind[CauseKind.CYCLE]
    assert cycle.cause.members == ("a", "b")
    assert cycle.tasks == ids(p, "a", "b", "c", "d", "both")
    assert cycle.text == "cycle of 2 (a, b) with nothing published: blocks 5 tasks"
    failed = by_kind[CauseKind.FAILED]
    assert failed.tasks == ids(p, "user", "user2", "both")
    assert failed.text == "base failed: blocks 3 tasks"
    assert failed.cause.task_id == ids(p, "base")[0]
    assert "Error 2" in failed.cause.detail
    assert by_kind[CauseKind.UNRESOLVABLE].text == \
        "nothing provides pkgconfig(nowhere): blocks 1 task"
    # app waits for lib, which is ready: queued, not held back by anything.
    assert blockage.queued == 1
    assert blockage.held == 8
    # Most tasks held back first; each group is found again by its key.
    assert blockage.groups[0].cause.kind is CauseKind.CYCLE
    assert blockage.group(failed.cause.key) == failed


def test_a_long_cycle_names_three_members_and_collapses_the_rest() -> None:
    p = Planner(REPO, PublishedIndex())
    names = [f"m{i:02}" for i in range(69)]
    p.plan_tree(tree(commit_id(1), *(
        entry(n, 1, [f"lib{names[(i + 1) % len(names)]}"], [f"lib{n}"])
        for i, n in enumerate(names))))
    [group] = root_causes([p]).groups
    assert group.text == "cycle of 69 (m00, m01, m02, …) with nothing published: blocks 69 tasks"


def test_a_ready_task_held_from_builders_holds_back_its_dependents() -> None:
    p = Planner(REPO, PublishedIndex())
    p.plan_tree(tree(commit_id(1), entry("lib", 1, [], ["liblib"]),
                     entry("app", 1, ["liblib"])))

    def hold(task: Task) -> tuple[CauseKind, str] | None:
        return CauseKind.NO_BUILDER, f"no online builder for {task.arch}"

    no_hold: Hold = lambda task: None  # noqa: E731
    assert root_causes([p], no_hold).groups == ()
    [group] = root_causes([p], hold).groups
    assert group.cause.kind is CauseKind.NO_BUILDER
    assert group.tasks == ids(p, "lib", "app")
    assert group.text == "no online builder for x86_64: blocks 2 tasks"


def test_a_long_chain_behind_a_failure_is_walked_without_recursion() -> None:
    p = Planner(REPO, PublishedIndex())
    n = 3000
    p.plan_tree(tree(commit_id(1), entry("s0", 1, [], ["lib0"]), *(
        entry(f"s{i}", 1, [f"lib{i - 1}"], [f"lib{i}"]) for i in range(1, n))))
    first = p.latest("s0")
    assert first is not None
    build(p, first, Outcome.FAILED, reason="broken")
    [group] = root_causes([p]).groups
    assert len(group.tasks) == n - 1
