"""Expected start and finish of open tasks: a simulation of the farm's slots over the
dependency graph with learned durations."""

from __future__ import annotations

from daemon.summit.planning.eta import (
    DEFAULT_DURATION_S,
    EtaTask,
    Expected,
    estimate,
    typical_duration,
)


def test_a_chain_runs_one_after_the_other_whatever_the_slots() -> None:
    tasks = [EtaTask(1, 10), EtaTask(2, 20, deps=(1,)), EtaTask(3, 5, deps=(2,))]
    eta = estimate(tasks, slots=4, now=100, overhead_s=1)
    assert eta.tasks == {1: Expected(100, 111), 2: Expected(111, 132), 3: Expected(132, 138)}
    assert eta.finish == 138


def test_slots_bound_how_many_run_at_once_in_queue_order() -> None:
    tasks = [EtaTask(i, 10) for i in (1, 2, 3)]
    eta = estimate(tasks, slots=2, now=0)
    assert [eta.tasks[i].start for i in (1, 2, 3)] == [0, 0, 10]
    assert eta.finish == 20


def test_a_diamond_waits_for_both_sides() -> None:
    tasks = [EtaTask(1, 5), EtaTask(2, 30, deps=(1,)), EtaTask(3, 10, deps=(1,)),
             EtaTask(4, 5, deps=(2, 3))]
    eta = estimate(tasks, slots=2, now=0)
    assert eta.tasks[4] == Expected(35, 40)


def test_running_builds_hold_their_slots_until_their_learned_end() -> None:
    tasks = [EtaTask(1, 60, started_at=-50), EtaTask(2, 60, started_at=-100),
             EtaTask(3, 10)]
    eta = estimate(tasks, slots=2, now=0)
    # Task 1 ends in 10 s; task 2 overran its learned duration: taken to end now.
    assert eta.tasks[1] == Expected(-50, 10) and eta.tasks[2] == Expected(-100, 0)
    assert eta.tasks[3] == Expected(0, 10)


def test_publishing_tasks_finish_after_the_overhead_and_hold_no_slot() -> None:
    tasks = [EtaTask(1, 60, started_at=-60, built=True), EtaTask(2, 10, deps=(1,)),
             EtaTask(3, 10)]
    eta = estimate(tasks, slots=1, now=0, overhead_s=3)
    assert eta.tasks[1].finish == 3
    assert eta.tasks[3] == Expected(0, 13) and eta.tasks[2] == Expected(10, 23)


def test_a_retry_waits_for_its_back_off() -> None:
    eta = estimate([EtaTask(1, 10, not_before=30)], slots=1, now=0)
    assert eta.tasks[1] == Expected(30, 40)


def test_what_waits_for_a_stuck_task_has_no_estimate() -> None:
    tasks = [EtaTask(1, 10, stuck=True), EtaTask(2, 10, deps=(1,)), EtaTask(3, 10, deps=(2,)),
             EtaTask(4, 10, deps=(99,)), EtaTask(5, 10)]
    eta = estimate(tasks, slots=1, now=0)
    assert set(eta.tasks) == {5} and eta.finish == 10


def test_no_slot_or_no_task_means_no_estimate() -> None:
    assert estimate([EtaTask(1, 10)], slots=0, now=0).finish is None
    assert estimate([], slots=3, now=0).finish is None


def test_a_source_never_built_takes_the_typical_learned_duration() -> None:
    assert typical_duration([10, 30, 20, 0]) == 20
    assert typical_duration([]) == DEFAULT_DURATION_S
