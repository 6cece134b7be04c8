from __future__ import annotations

import pytest

from daemon.summit.planning.graph import PublishedIndex
from daemon.summit.planning.planner import PlanError, Planner
from daemon.summit.planning.states import BlockKind, RepoRef, Task, TaskReason, TaskState
from daemon.summit.planning.tree import RecipeDelta
from events.payloads import (
    BuildDone,
    BuildStarted,
    Outcome,
    PackagePublished,
    PublishedPackage,
    TaskCancelled,
    TaskReady,
)
from tests.unit.summit.helpers import build, commit_id, entry, tree

REPO = RepoRef(name="recipes", url="https://example.org/recipes.git")


def planner(published: dict[str, int] | None = None, **provides: list[str]) -> Planner:
    index = PublishedIndex()
    for source, release in (published or {}).items():
        index.add(source, release, [source, *provides.get(source, [])])
    return Planner(REPO, index)


def by_source(p: Planner) -> dict[str, Task]:
    return {t.source: t for t in p.open_tasks()}


def publish(p: Planner, task: Task, provides: tuple[str, ...] = ()) -> PackagePublished:
    return PackagePublished(
        task_id=task.task_id, source=task.source, release=task.release, build_release=1,
        arch="x86_64", channel="volatile", generation=1,
        packages=[PublishedPackage(name=task.source, version="1", release=task.release,
                                   build_release=1, sha256="0" * 64, provides=list(provides))],
    )


def run_to_published(p: Planner, task: Task, provides: tuple[str, ...] = ()) -> list[Task]:
    """Build ``task`` and publish it; returns the tasks the publication made ready."""
    build(p, task)
    return list(p.on_package_published(publish(p, task, provides)).ready)


def test_missing_by_release_against_published() -> None:
    p = planner({"a": 1, "b": 2})
    d = p.plan_tree(tree(commit_id(1), entry("a", 2), entry("b", 2), entry("c", 1)))
    tasks = by_source(p)
    assert set(tasks) == {"a", "c"}
    assert tasks["a"].reason is TaskReason.RELEASE_BUMP and tasks["c"].reason is TaskReason.NEW
    assert {e.source for e in d.ready} == {"a", "c"}
    # planning the same tree again decides nothing
    again = p.plan_tree(tree(commit_id(1), entry("a", 2), entry("b", 2), entry("c", 1)))
    assert again.tasks == () and again.emits == ()


def test_dependency_through_manifest_provider_then_ready_on_publication() -> None:
    p = planner()
    p.plan_tree(tree(commit_id(1), entry("zlib", 1, provides=["pkgconfig(zlib)"]),
                     entry("app", 1, deps=["pkgconfig(zlib)"])))
    tasks = by_source(p)
    assert tasks["zlib"].state is TaskState.READY
    assert tasks["app"].state is TaskState.BLOCKED
    (reason,) = tasks["app"].blocked_by
    assert (reason.kind, reason.source, reason.task_id) == (
        BlockKind.DEPENDENCY, "zlib", tasks["zlib"].task_id)
    ready = run_to_published(p, tasks["zlib"], ("pkgconfig(zlib)",))
    assert [t.source for t in ready] == ["app"]
    assert p.tasks[tasks["zlib"].task_id].state is TaskState.COMPLETED
    # replaying the publication changes nothing
    again = p.on_package_published(publish(p, tasks["zlib"]))
    assert again.emits == () and again.ready == () and again.tasks == ()


def test_published_provider_satisfies_unless_a_newer_build_is_pending() -> None:
    p = planner({"zlib": 1, "app": 1}, zlib=["pkgconfig(zlib)"])
    p.plan_tree(tree(commit_id(1), entry("zlib", 1, provides=["pkgconfig(zlib)"]),
                     entry("app", 2, deps=["pkgconfig(zlib)"])))
    assert by_source(p)["app"].state is TaskState.READY
    q = planner({"zlib": 1, "app": 1}, zlib=["pkgconfig(zlib)"])
    q.plan_tree(tree(commit_id(1), entry("zlib", 2, provides=["pkgconfig(zlib)"]),
                     entry("app", 2, deps=["pkgconfig(zlib)"])))
    assert by_source(q)["app"].state is TaskState.BLOCKED


def test_supersede_open_task_not_started() -> None:
    p = planner()
    p.plan_tree(tree(commit_id(1), entry("dep", 1), entry("a", 1, deps=["dep"])))
    old = by_source(p)["a"]
    d = p.plan_delta(RecipeDelta(commit_id(1), commit_id(2), {"r/a": entry("a", 2, ["dep"])}))
    assert p.tasks[old.task_id].state is TaskState.SUPERSEDED
    new = by_source(p)["a"]
    assert new.release == 2 and new.reason is TaskReason.SUPERSEDED
    assert new.commit == commit_id(2)
    assert {t.task_id for t in d.tasks} == {old.task_id, new.task_id}


def test_going_back_and_forth_recreates_the_heads_task() -> None:
    # A replayed push (or a branch reset and restored) plans an older commit, then the head
    # again: the head's release must have an open task once more.
    p = planner()
    p.plan_tree(tree(commit_id(1), entry("a", 1)))
    p.plan_delta(RecipeDelta(commit_id(1), commit_id(2), {"r/a": entry("a", 2)}))
    head_task = by_source(p)["a"]
    p.plan_delta(RecipeDelta(commit_id(2), commit_id(1), {"r/a": entry("a", 1)}))
    assert p.tasks[head_task.task_id].state is TaskState.CANCELLED
    assert by_source(p)["a"].release == 1
    p.plan_delta(RecipeDelta(commit_id(1), commit_id(2), {"r/a": entry("a", 2)}))
    again = by_source(p)["a"]
    assert (again.release, again.commit, again.state) == (2, commit_id(2), TaskState.READY)
    assert again.task_id != head_task.task_id


def test_a_recipe_removed_and_restored_is_planned_again() -> None:
    p = planner()
    p.plan_tree(tree(commit_id(1), entry("a", 1)))
    p.plan_delta(RecipeDelta(commit_id(1), commit_id(2), {}, ("r/a",)))
    assert by_source(p) == {}
    p.plan_delta(RecipeDelta(commit_id(2), commit_id(1), {"r/a": entry("a", 1)}))
    assert by_source(p)["a"].state is TaskState.READY


def test_an_operators_cancel_stays_when_the_tree_is_planned_again() -> None:
    p = planner()
    p.plan_tree(tree(commit_id(1), entry("a", 1)))
    p.cancel(by_source(p)["a"].task_id)
    p.plan_tree(tree(commit_id(1), entry("a", 1)))
    assert by_source(p) == {}


def test_superseding_an_assigned_task_tells_its_builder() -> None:
    p = planner()
    p.plan_tree(tree(commit_id(1), entry("a", 1)))
    old = by_source(p)["a"]
    (ready,) = p.assign(old.task_id, "b1", 0.0).emits
    assert isinstance(ready, TaskReady) and ready.builder == "b1"
    d = p.plan_delta(RecipeDelta(commit_id(1), commit_id(2), {"r/a": entry("a", 2)}))
    (cancel,) = d.emits
    assert isinstance(cancel, TaskCancelled)
    assert (cancel.task_id, cancel.builder, cancel.attempt) == (old.task_id, "b1", 1)
    assert [t.source for t in d.ready] == ["a"]
    # the builder's late claim of the superseded assignment is refused
    late = p.on_build_started(BuildStarted(task_id=old.task_id, builder="b1",
                                           arch="x86_64", attempt=1))
    assert [type(e) for e in late.emits] == [TaskCancelled]
    assert p.tasks[old.task_id].state is TaskState.SUPERSEDED


def test_cycle_broken_through_published_member() -> None:
    p = planner({"a": 1, "b": 1}, a=["liba"], b=["libb"])
    p.plan_tree(tree(commit_id(1), entry("a", 2, ["libb"], ["liba"]),
                     entry("b", 2, ["liba"], ["libb"])))
    tasks = by_source(p)
    states = sorted(t.state for t in tasks.values())
    assert states == [TaskState.BLOCKED, TaskState.READY]
    assert p.waves() == [[s for s, t in tasks.items() if t.state is TaskState.READY],
                         [s for s, t in tasks.items() if t.state is TaskState.BLOCKED]]


def test_cycle_without_published_member_is_blocked_with_members() -> None:
    p = planner()
    p.plan_tree(tree(commit_id(1), entry("a", 1, ["libb"], ["liba"]),
                     entry("b", 1, ["liba"], ["libb"]), entry("c", 1, ["liba"])))
    tasks = by_source(p)
    for member in ("a", "b"):
        assert [(r.kind, r.members) for r in tasks[member].blocked_by] == [
            (BlockKind.CYCLE, ("a", "b"))]
    assert [r.source for r in tasks["c"].blocked_by] == ["a"]
    assert p.waves() == []


def test_self_dependency() -> None:
    p = planner({"gcc": 1})
    p.plan_tree(tree(commit_id(1), entry("gcc", 2, ["gcc"])))
    assert by_source(p)["gcc"].state is TaskState.READY
    q = planner()
    q.plan_tree(tree(commit_id(1), entry("gcc", 1, ["gcc"])))
    (reason,) = by_source(q)["gcc"].blocked_by
    assert (reason.kind, reason.members) == (BlockKind.CYCLE, ("gcc",))


def test_unresolvable_until_a_publication_adds_the_provider() -> None:
    p = planner()
    d = p.plan_tree(tree(commit_id(1), entry("app", 1, ["pkgconfig(foo)"])))
    (reason,) = by_source(p)["app"].blocked_by
    assert (reason.kind, reason.name) == (BlockKind.UNRESOLVABLE, "pkgconfig(foo)")
    assert d.ready == ()
    foreign = PackagePublished(
        task_id=999, source="foo", release=1, build_release=1, arch="x86_64",
        channel="volatile", generation=3,
        packages=[PublishedPackage(name="foo-devel", version="1", release=1, build_release=1,
                                   sha256="0" * 64, provides=["pkgconfig(foo)"])])
    d = p.on_package_published(foreign)
    assert [e.source for e in d.ready] == ["app"]


def test_failure_blocks_dependents_and_a_later_publication_unblocks() -> None:
    p = planner({"lib": 1})
    p.plan_tree(tree(commit_id(1), entry("lib", 2), entry("app", 1, ["lib"])))
    lib = by_source(p)["lib"]
    d = build(p, lib, Outcome.FAILED)
    fail = BuildDone(task_id=lib.task_id, attempt=1, builder="b", source="lib", version="1",
                     release=2, build_release=1, arch="x86_64", outcome=Outcome.FAILED)
    assert p.on_build_done(fail).tasks == ()  # idempotent
    app = by_source(p)["app"]
    assert [(r.kind, r.source, r.task_id) for r in app.blocked_by] == [
        (BlockKind.FAILED, "lib", lib.task_id)]
    assert app in d.tasks
    with pytest.raises(PlanError):
        p.retry(app.task_id)
    retry = p.retry(lib.task_id)
    (again,) = [t for t in retry.tasks if t.source == "lib"]
    assert again.reason is TaskReason.RETRY and again.state is TaskState.READY
    assert by_source(p)["app"].blocked_by[0].kind is BlockKind.DEPENDENCY
    assert [t.source for t in run_to_published(p, again)] == ["app"]


def test_ready_tasks_come_largest_critical_path_first() -> None:
    p = planner()
    d = p.plan_tree(tree(commit_id(1), entry("leaf", 1), entry("base", 1),
                         entry("mid", 1, ["base"]), entry("top", 1, ["mid"])))
    assert [t.source for t in d.ready] == ["base", "leaf"]
    assert [p.critical_path(t.source) for t in d.ready] == [2, 0]


def test_deleted_recipe_cancels_its_task_and_dependents_see_it_gone() -> None:
    p = planner()
    p.plan_tree(tree(commit_id(1), entry("lib", 1), entry("app", 1, ["lib"])))
    d = p.plan_delta(RecipeDelta(commit_id(1), commit_id(2), {}, ("r/lib",)))
    states = {t.source: t.state for t in d.tasks}
    assert states["lib"] is TaskState.CANCELLED
    (reason,) = by_source(p)["app"].blocked_by
    assert (reason.kind, reason.name) == (BlockKind.UNRESOLVABLE, "lib")


def test_incremental_matches_full_plan() -> None:
    base = [entry("a", 1, [], ["x"]), entry("b", 1, ["x"], ["y"]), entry("c", 1, ["y", "z"]),
            entry("d", 1, ["c"], ["z"])]
    changed = [entry("a", 2, ["y"], ["x"]), entry("e", 1, ["c"])]
    inc = planner({"a": 1, "b": 1, "c": 1, "d": 1})
    inc.plan_tree(tree(commit_id(1), *base))
    inc.plan_delta(RecipeDelta(commit_id(1), commit_id(2), {e.path: e for e in changed}))
    full = planner({"a": 1, "b": 1, "c": 1, "d": 1})
    merged = {e.path: e for e in base} | {e.path: e for e in changed}
    full.plan_tree(tree(commit_id(2), *merged.values()))

    def view(p: Planner) -> dict[str, tuple[int, str, tuple[object, ...]]]:
        return {t.source: (t.release, str(t.state), tuple((r.kind, r.source, r.members)
                                                           for r in t.blocked_by))
                for t in p.open_tasks()}

    assert view(inc) == view(full)
    assert inc.waves() == full.waves()


def test_restart_from_stored_tasks_decides_nothing_new() -> None:
    recipes = tree(commit_id(1), entry("lib", 1), entry("app", 1, ["lib"]))
    first = planner()
    first.plan_tree(recipes)
    stored = list(first.tasks.values())
    again = Planner(REPO, PublishedIndex(), stored)
    decision = again.plan_tree(recipes)
    assert decision.tasks == () and decision.emits == ()
    assert {t.source: t.state for t in again.open_tasks()} == {
        "lib": TaskState.READY, "app": TaskState.BLOCKED}
    new = again.plan_delta(RecipeDelta(commit_id(1), commit_id(2), {"r/x": entry("x", 1)}))
    assert [t.task_id for t in new.tasks] == [max(t.task_id for t in stored) + 1]


def test_priority_starts_at_the_repository_base_and_changes_until_building() -> None:
    p = Planner(RepoRef(name="recipes", url="u", priority=7), PublishedIndex())
    p.plan_tree(tree(commit_id(1), entry("a", 1), entry("b", 1, deps=["a"])))
    tasks = by_source(p)
    assert tasks["a"].priority == 7 and tasks["b"].priority == 7
    blocked = p.prioritise(tasks["b"].task_id, 20)
    assert [t.priority for t in blocked.tasks] == [20]
    ready = p.prioritise(tasks["a"].task_id, -3)
    assert [(t.state, t.priority) for t in ready.tasks] == [(TaskState.READY, -3)]
    assert [t.task_id for t in ready.ready] == [tasks["a"].task_id]
    build(p, by_source(p)["a"])
    with pytest.raises(PlanError, match="only tasks not yet building"):
        p.prioritise(tasks["a"].task_id, 1)


def test_pointing_the_repository_at_another_environment_rebuilds_in_order() -> None:
    new_env = "ab" * 32
    p = planner()
    p.plan_tree(tree(commit_id(1), entry("zlib", 1, provides=["pkgconfig(zlib)"]),
                     entry("app", 1, deps=["pkgconfig(zlib)"]), entry("late", 1)))
    first = by_source(p)
    run_to_published(p, first["zlib"], ("pkgconfig(zlib)",))
    run_to_published(p, by_source(p)["app"])
    build(p, first["late"])  # building in the old environment when the operator acts
    assert p.tasks[first["late"].task_id].state is TaskState.PUBLISHING
    # Nothing rebuilds without the operator: re-planning the same tree decides nothing.
    assert p.plan_tree(tree(commit_id(1), entry("zlib", 1, provides=["pkgconfig(zlib)"]),
                            entry("app", 1, deps=["pkgconfig(zlib)"]),
                            entry("late", 1))).tasks == ()
    decision = p.use_environment(new_env)
    again = by_source(p)
    assert set(again) == {"zlib", "app", "late"}
    assert {t.reason for t in again.values()} == {TaskReason.ENVIRONMENT_CHANGED}
    assert {t.build_release for t in again.values()} == {2}
    assert again["zlib"].state is TaskState.READY
    assert again["app"].state is TaskState.BLOCKED  # waits for zlib's rebuild
    assert {t.source for t in decision.ready} == {"late", "zlib"}
    # The repository's environment goes to the builder with each assignment.
    (ready,) = p.assign(again["zlib"].task_id, "b", 0.0).emits
    assert isinstance(ready, TaskReady) and ready.environment == new_env
    assert ready.build_release == 2 and ready.reason == "build environment changed"


def test_a_build_running_in_the_old_environment_is_cancelled() -> None:
    p = planner()
    p.plan_tree(tree(commit_id(1), entry("a", 1)))
    old = by_source(p)["a"]
    run_to_published(p, old)
    retry = p.use_environment("cd" * 32)
    rebuild = by_source(p)["a"]
    p.assign(rebuild.task_id, "b", 0.0)
    p.on_build_started(BuildStarted(task_id=rebuild.task_id, builder="b", arch="x86_64",
                                    attempt=1))
    assert p.tasks[rebuild.task_id].state is TaskState.BUILDING
    assert retry.ready
    decision = p.use_environment("ef" * 32)
    assert p.tasks[rebuild.task_id].state is TaskState.CANCELLED
    assert any(isinstance(e, TaskCancelled) and e.task_id == rebuild.task_id
               for e in decision.emits)
    assert by_source(p)["a"].build_release == 3


def test_a_snapshot_reads_as_the_planner_did_and_stays_so_while_it_changes() -> None:
    p = planner()
    p.plan_tree(tree(commit_id(1), entry("a", 1, [], ["liba"]), entry("b", 1, ["liba"], ["libb"]),
                     entry("c", 1, ["libb"])))

    def reads(q: Planner) -> object:
        return (q.waves(), sorted((t.task_id, t.state) for t in q.open_tasks()),
                {s: q.critical_path(s) for s in "abc"}, dict(q.schedule.edges))
    before = reads(p)
    snap = p.snapshot()
    assert reads(snap) == before
    a = p.latest("a")
    assert a is not None
    build(p, a, outcome=Outcome.FAILED, reason="broken on purpose")
    assert reads(p) != before, "the planner moved on"
    assert reads(snap) == before, "its snapshot did not"
