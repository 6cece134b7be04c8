"""A build dependency resolves against the channel's packages and the repository's build
environment's provides (given to the planner as data), and nothing else: one that only the
environment provides does not block; one that nothing provides is unresolvable, naming it."""

from __future__ import annotations

from daemon.summit.planning.planner import Planner
from daemon.summit.planning.states import BlockKind, RepoRef, Task, TaskState
from events.payloads import BuildStarted, TaskCancelled
from tests.unit.summit.helpers import commit_id, entry, tree

DIGEST = "a" * 64
PROVIDES = ["binary(gcc)", "name(make)", "soname(libc.so.6(x86_64))", "pkgconfig(zlib)"]


def _planner(provides: list[str] | None = PROVIDES) -> Planner:
    return Planner(RepoRef("r", "file:///r", environment=DIGEST),
                   environment_provides=provides or ())


def _open(p: Planner) -> dict[str, Task]:
    return {t.source: t for t in p.open_tasks()}


def test_a_dependency_only_the_environment_provides_does_not_block() -> None:
    p = _planner()
    d = p.plan_tree(tree(commit_id(1), entry("app", 1, ["binary(gcc)", "make",
                                                        "soname(libc.so.6(x86_64))"]),
                         entry("lib", 1, ["name(make)", "pkgconfig(zlib)"])))
    assert {t.source for t in d.ready} == {"app", "lib"}
    assert all(t.state is TaskState.READY for t in _open(p).values())


def test_a_dependency_nothing_provides_is_unresolvable_by_name() -> None:
    p = _planner()
    p.plan_tree(tree(commit_id(1), entry("app", 1, ["binary(gcc)", "pkgconfig(foo)"])))
    (reason,) = _open(p)["app"].blocked_by
    assert (reason.kind, reason.name) == (BlockKind.UNRESOLVABLE, "pkgconfig(foo)")


def test_without_the_environment_its_provides_resolve_nothing() -> None:
    p = _planner(None)
    p.plan_tree(tree(commit_id(1), entry("app", 1, ["binary(gcc)"])))
    (reason,) = _open(p)["app"].blocked_by
    assert (reason.kind, reason.name) == (BlockKind.UNRESOLVABLE, "binary(gcc)")


def test_provides_learned_later_unblock_what_waited_for_them() -> None:
    p = _planner(None)
    p.plan_tree(tree(commit_id(1), entry("app", 1, ["binary(gcc)"])))
    assert _open(p)["app"].state is TaskState.BLOCKED
    d = p.environment_known(PROVIDES)
    assert [t.source for t in d.ready] == ["app"] and _open(p)["app"].blocked_by == ()


def test_a_ready_task_whose_new_environment_lacks_a_dependency_is_blocked_again() -> None:
    """Pointing the repository at an environment without ``binary(gcc)`` blocks the ready
    task that needs it, naming it, rather than leaving it for a builder to fail; an
    assignment not claimed yet is withdrawn (its builder told not to start it, and the
    attempt is no try); an environment that provides it again makes the task ready again."""
    p = _planner()
    p.plan_tree(tree(commit_id(1), entry("app", 1, ["binary(gcc)"]),
                     entry("held", 1, ["binary(gcc)"])))
    held = _open(p)["held"]
    p.assign(held.task_id, "b1", 0.0)
    d = p.use_environment("b" * 64, ["name(make)"])
    now = _open(p)
    for source in ("app", "held"):
        assert now[source].state is TaskState.BLOCKED and now[source].builder is None
        (reason,) = now[source].blocked_by
        assert (reason.kind, reason.name) == (BlockKind.UNRESOLVABLE, "binary(gcc)")
    assert d.ready == ()
    (stop,) = d.emits
    assert isinstance(stop, TaskCancelled)
    assert (stop.task_id, stop.builder, stop.attempt) == (held.task_id, "b1", 1)
    assert (now["held"].attempt, now["held"].tries) == (2, 1), "withdrawn: not a try"
    refused = p.on_build_started(BuildStarted(task_id=held.task_id, builder="b1",
                                              arch="x86_64", attempt=1))
    assert isinstance(refused.emits[0], TaskCancelled) and not refused.tasks
    d = p.use_environment(DIGEST, PROVIDES)
    assert {t.source for t in d.ready} == {"app", "held"}
