"""What limits the farm's progress, from the figures the metrics export."""

from __future__ import annotations

from daemon.summit.planning.fleet import Builder, BuilderStatus
from daemon.summit.planning.progress import Progress, limit, progress
from daemon.summit.planning.rootcause import Blockage, CauseGroup, CauseKind, RootCause
from daemon.summit.planning.states import Task, TaskReason, TaskState
from daemon.summit.planning.views import counts

NONE = Blockage()


def task(task_id: int, state: TaskState, builder: str | None = None) -> Task:
    return Task(task_id=task_id, source=f"s{task_id}", version="1", release=1,
                recipe_path="r", commit="c", repository="recipes", arch="x86_64",
                reason=TaskReason.NEW, state=state, builder=builder)


def builder(name: str, slots: int, status: BuilderStatus = BuilderStatus.ONLINE) -> Builder:
    return Builder(name=name, arch="x86_64", status=status, boot="1", slots=slots,
                   interval_s=5.0, seen=0.0)


def figures(states: list[TaskState], slots: int = 0, busy: int = 0, waiting: int = 0,
            online: int = 1) -> Progress:
    return Progress(counts(task(i, s) for i, s in enumerate(states)), online, slots, busy,
                    waiting)


def test_progress_counts_what_the_metrics_count_and_the_slots_taken() -> None:
    tasks = [task(1, TaskState.BUILDING, "b1"), task(2, TaskState.READY, "b1"),
             task(3, TaskState.READY), task(4, TaskState.PUBLISHING, "b2"),
             task(5, TaskState.COMPLETED)]
    fleet = [builder("b1", 2), builder("b2", 2), builder("gone", 4, BuilderStatus.LOST),
             builder("drain", 1, BuilderStatus.DRAINING)]
    p = progress(tasks, fleet, {"b1": 2})
    assert p.counts["ready"] == 2 and p.counts["completed"] == 1
    assert (p.builders_online, p.slots, p.busy, p.free, p.waiting, p.open) == (3, 4, 2, 2, 1, 4)


def test_the_first_limit_that_applies_is_named() -> None:
    S = TaskState
    assert limit(figures([S.COMPLETED]), NONE).kind == "idle"
    assert limit(figures([S.READY], waiting=1), NONE).text == \
        "No builder takes work: 1 ready task waiting for one."
    busy = limit(figures([S.BUILDING] * 4 + [S.READY] * 3, slots=4, busy=4, waiting=3), NONE)
    assert busy.text == "Builders busy: all 4 slots taken, 3 ready tasks waiting for one."
    repo = limit(figures([S.PUBLISHING] * 31 + [S.BLOCKED], slots=4), NONE)
    assert (repo.kind, repo.text) == (
        "repository", "Builders idle while 31 tasks publish: waiting for the repository.")
    some = limit(figures([S.PUBLISHING] * 3 + [S.BUILDING], slots=4, busy=1), NONE)
    assert some.text == "3 of 4 slots idle while 3 tasks publish: waiting for the repository."


def test_everything_blocked_names_the_number_of_root_causes() -> None:
    S = TaskState
    causes = Blockage((CauseGroup(RootCause(CauseKind.FAILED, "r", "x86_64", "gcc"), (1, 2)),
                       CauseGroup(RootCause(CauseKind.UNRESOLVABLE, "r", "x86_64", "n"), (3,))))
    blocked = limit(figures([S.BLOCKED] * 3 + [S.FAILED], slots=4), causes)
    assert (blocked.kind, blocked.text) == (
        "blocked", "Everything left is blocked by 2 root causes (3 tasks held back).")
    building = limit(figures([S.BUILDING, S.BLOCKED] * 2, slots=4, busy=2), causes)
    assert building.text == ("Building 2 on 1 builder (2 of 4 slots free); 3 tasks held back "
                             "by 2 root causes.")
