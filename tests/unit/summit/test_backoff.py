"""Infrastructure failures are retried after a back-off that doubles per attempt, up to a
bound; build failures (any limit included) are final; the dispatcher leaves a task alone
until its back-off is over."""

from __future__ import annotations

import pytest

from daemon.summit.planning.planner import Planner
from daemon.summit.planning.states import (
    Backoff,
    TaskState,
    assign,
    lose,
    move,
    on_build_done,
    on_publish_failed,
)
from events.payloads import Outcome, PublishFailed
from tests.unit.summit.test_states import REPO, building, done


def test_the_delay_doubles_per_attempt_up_to_its_ceiling() -> None:
    backoff = Backoff(base_s=10, max_s=60)
    assert [backoff.delay(n) for n in (1, 2, 3, 4, 5, 100)] == [10, 20, 40, 60, 60, 60]


@pytest.mark.parametrize("outcome", [Outcome.INFRASTRUCTURE, Outcome.CANCELLED])
def test_an_infrastructure_failure_waits_for_its_retry_time(outcome: Outcome) -> None:
    retried = on_build_done(building(), done(outcome), ("zlib",), retry_at=1010.0)
    assert retried.task.state is TaskState.READY and retried.task.attempt == 2
    assert retried.task.retry_at == 1010.0
    # Assigning it (once due) clears the wait.
    assigned = assign(retried.task, "b2", 1011.0, REPO, 0).task
    assert assigned.builder == "b2" and assigned.retry_at is None


@pytest.mark.parametrize("outcome", [Outcome.FAILED, Outcome.TIMEOUT, Outcome.SILENT,
                                     Outcome.LOG_LIMIT, Outcome.OUTPUT_LIMIT])
def test_a_build_failure_is_not_retried(outcome: Outcome) -> None:
    failed = on_build_done(building(), done(outcome), ("zlib",), retry_at=1010.0)
    assert failed.task.state is TaskState.FAILED and failed.task.retry_at is None


def test_a_lost_builder_and_a_network_import_failure_wait_too() -> None:
    assert lose(building(), "builder b1 was lost", retry_at=5.0).task.retry_at == 5.0
    publishing = move(building(), TaskState.PUBLISHING)
    failed = PublishFailed(task_id=7, source="zlib", release=2, arch="x86_64",
                           channel="volatile", reason="connection reset", retryable=True)
    assert on_publish_failed(publishing, failed, retry_at=6.0).task.retry_at == 6.0


def test_the_planner_counts_the_back_off_from_now_by_attempt() -> None:
    planner = Planner(REPO, backoff=Backoff(base_s=10, max_s=600))
    first = building()
    planner._store(first)  # a task the planner holds, building its first attempt
    decision = planner.lose(first.task_id, "builder b1 was lost", now=1000.0)
    (again,) = decision.tasks
    assert (again.attempt, again.retry_at) == (2, 1010.0)
    planner._store(move(assign(again, "b2", 1010.0, REPO, 0).task, TaskState.BUILDING))
    (third,) = planner.on_build_done(done(Outcome.INFRASTRUCTURE, attempt=2, builder="b2"),
                                     now=2000.0).tasks
    assert (third.attempt, third.retry_at) == (3, 2020.0)
    # At the bound, one more loss fails the task.
    planner._store(move(assign(third, "b3", 2020.0, REPO, 0).task, TaskState.BUILDING))
    assert planner.lose(first.task_id, "lost").tasks[0].state is TaskState.FAILED
