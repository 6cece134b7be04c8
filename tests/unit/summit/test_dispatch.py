"""The pure dispatcher with capacity, needs and the operator's levers: a task goes only to
a builder that can take it, never beyond a builder's slots, never while paused or to a
drained builder; a task nobody can take says why."""

from __future__ import annotations

from dataclasses import replace

from daemon.summit.planning.constraints import Constraints, Needs, Rule, lacks
from daemon.summit.planning.dispatch import dispatch, overtaken, queue_order, waiting_reason
from daemon.summit.planning.fleet import Builder, BuilderStatus
from daemon.summit.planning.levers import Levers
from daemon.summit.planning.states import Task, TaskReason, TaskState

ORDER = queue_order(lambda t: 0)


def task(task_id: int, source: str = "", priority: int = 0, repository: str = "r") -> Task:
    return Task(task_id=task_id, source=source or f"s{task_id}", version="1", release=1,
                recipe_path=".", commit="c", repository=repository, arch="x86_64",
                reason=TaskReason.NEW, state=TaskState.READY, priority=priority)


def builder(name: str, slots: int = 1, features: frozenset[str] = frozenset(),
            memory_mb: int | None = None) -> Builder:
    return Builder(name=name, arch="x86_64", status=BuilderStatus.ONLINE, boot="b",
                   slots=slots, interval_s=10, seen=0, features=features,
                   memory_mb=memory_mb)


BIG = Constraints((Rule(Needs(frozenset({"big"})), "llvm*"),))


def test_a_builder_never_gets_more_than_its_free_slots() -> None:
    ready = [task(i) for i in range(1, 6)]
    out = dispatch(ready, [builder("b", slots=2)], {"b": 1}, ORDER)
    assert [a.task.task_id for a in out] == [1]
    assert dispatch(ready, [builder("b", slots=2)], {"b": 2}, ORDER) == []


def test_a_task_goes_only_to_a_builder_with_what_it_needs_others_pass_it_by() -> None:
    ready = [task(1, "llvm"), task(2, "zlib")]
    small = builder("small", slots=2)
    out = dispatch(ready, [small], {}, ORDER, BIG.needs)
    assert [(a.task.source, a.builder) for a in out] == [("zlib", "small")]
    out = dispatch(ready, [small, builder("large", features=frozenset({"big"}))], {}, ORDER,
                   BIG.needs)
    assert sorted((a.task.source, a.builder) for a in out) == [("llvm", "large"),
                                                               ("zlib", "small")]


def test_a_task_nobody_online_can_take_says_what_is_missing() -> None:
    llvm = task(1, "llvm")
    why = waiting_reason(llvm, [builder("small")], BIG.needs(llvm))
    assert why == "no builder with feature big for x86_64"
    assert waiting_reason(llvm, [builder("l", features=frozenset({"big"}))],
                          BIG.needs(llvm)) is None
    assert waiting_reason(llvm, [], BIG.needs(llvm)) == "no online builder for x86_64"


def test_configured_memory_needs_a_builder_declaring_as_much_measured_only_less() -> None:
    needs = Needs(memory_mb=8192)
    assert lacks(builder("a"), needs) == ["8192 MB memory"]
    assert lacks(builder("b", memory_mb=4096), needs) == ["8192 MB memory"]
    assert lacks(builder("c", memory_mb=16384), needs) == []
    measured = Needs(measured_memory_mb=8192)
    assert lacks(builder("a"), measured) == []
    assert lacks(builder("b", memory_mb=4096), measured) == ["8192 MB memory (measured)"]


def test_rules_add_up_per_repository_and_pattern() -> None:
    rules = Constraints((Rule(Needs(frozenset({"kvm"}), memory_mb=100), "*", "r"),
                         Rule(Needs(frozenset({"big"}), memory_mb=500), "l*"),
                         Rule(Needs(disk_mb=9), "*", "other")))
    needs = rules.needs(task(1, "llvm"))
    assert needs == Needs(frozenset({"kvm", "big"}), 500, 0)
    assert needs.constraint_class == "big+kvm+memory"
    assert rules.needs(task(2, "zlib", repository="x")).constraint_class == "any"


def test_priority_goes_first_then_age() -> None:
    ready = [task(i, priority=5 if i == 10 else 0) for i in range(1, 11)]
    out = dispatch(ready, [builder("b")], {}, ORDER)
    assert [a.task.task_id for a in out] == [10]


def test_paused_farm_or_repository_assigns_nothing_of_it() -> None:
    ready = [task(1, repository="a"), task(2, repository="b")]
    b = builder("b", slots=4)
    assert dispatch(ready, [b], {}, ORDER, levers=Levers(paused=True)) == []
    out = dispatch(ready, [b], {}, ORDER, levers=Levers().pause("a", True))
    assert [a.task.repository for a in out] == ["b"]
    assert waiting_reason(ready[0], [b], levers=Levers().pause("a", True)) == \
        "dispatch is paused for repository a"
    assert Levers().pause("a", True).pause("a", False) == Levers()


def test_a_drained_builder_gets_nothing_enabled_again_it_does() -> None:
    ready = [task(1), task(2)]
    levers = Levers().drain("one", True)
    out = dispatch(ready, [builder("one"), builder("two")], {}, ORDER, levers=levers)
    assert [a.builder for a in out] == ["two"]
    out = dispatch(ready, [builder("one"), builder("two")], {}, ORDER,
                   levers=levers.drain("one", False))
    assert sorted(a.builder for a in out) == ["one", "two"]


def _given(t: Task, to: str) -> Task:
    return replace(t, builder=to, assigned_at=1.0)


def test_a_raised_task_takes_the_slot_of_an_unclaimed_assignment_behind_it() -> None:
    held = [_given(task(1), "b"), _given(task(2), "c")]
    raised = task(9, priority=5)
    out = overtaken([task(8), raised], held, [builder("b"), builder("c")], {"b": 1, "c": 1},
                    ORDER)
    # Only the raised task is ahead of an assignment; the last in order gives way.
    assert [t.task_id for t in out] == [2]
    # Nothing ahead of them: every assignment stays.
    assert overtaken([task(8)], held, [builder("b"), builder("c")], {"b": 1, "c": 1},
                     ORDER) == []


def test_a_free_slot_is_taken_before_anyone_gives_way() -> None:
    held = [_given(task(1), "b")]
    out = overtaken([task(9, priority=5)], held, [builder("b", slots=2)], {"b": 1}, ORDER)
    assert out == []


def test_only_an_assignment_on_a_builder_that_fits_gives_way() -> None:
    held = [_given(task(1, "zlib"), "small"), _given(task(2, "xz"), "large")]
    builders = [builder("small"), builder("large", features=frozenset({"big"}))]
    out = overtaken([task(9, "llvm", priority=5)], held, builders,
                    {"small": 1, "large": 1}, ORDER, BIG.needs)
    assert [t.task_id for t in out] == [2]


def test_paused_tasks_and_drained_builders_leave_assignments_alone() -> None:
    held = [_given(task(1), "b")]
    raised = task(9, priority=5)
    paused = Levers().pause(None, True)
    assert overtaken([raised], held, [builder("b")], {"b": 1}, ORDER, levers=paused) == []
    drained = Levers().drain("b", True)
    assert overtaken([raised], held, [builder("b")], {"b": 1}, ORDER, levers=drained) == []
