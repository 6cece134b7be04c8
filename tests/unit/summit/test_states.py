from __future__ import annotations

import pytest

from daemon.summit.planning.states import (
    TRANSITIONS,
    RepoRef,
    Task,
    TaskReason,
    TaskState,
    TransitionError,
    move,
    on_build_done,
    on_build_started,
    on_package_published,
    on_publish_failed,
)
from events.payloads import (
    BuildDone,
    BuildStarted,
    Outcome,
    PackagePublished,
    PublishFailed,
    TaskReady,
)

REPO = RepoRef(name="recipes", url="https://example.org/recipes.git")


def task(state: TaskState = TaskState.READY, attempt: int = 1) -> Task:
    return Task(task_id=7, source="zlib", version="1.3", release=2, recipe_path="z/zlib",
                commit="a" * 40, repository="recipes", arch="x86_64",
                reason=TaskReason.NEW, state=state, attempt=attempt)


def done(outcome: Outcome) -> BuildDone:
    return BuildDone(task_id=7, builder="b1", source="zlib", version="1.3", release=2,
                     build_release=1, arch="x86_64", outcome=outcome, reason="x")


def test_table_covers_every_state_and_finals_have_no_exit() -> None:
    assert set(TRANSITIONS) == set(TaskState)
    for final in (TaskState.COMPLETED, TaskState.FAILED, TaskState.CANCELLED,
                  TaskState.SUPERSEDED):
        assert not TRANSITIONS[final]


def test_refused_transition_names_both_states() -> None:
    with pytest.raises(TransitionError, match="from completed to ready"):
        move(task(TaskState.COMPLETED), TaskState.READY)
    with pytest.raises(TransitionError):
        move(task(TaskState.BUILDING), TaskState.BLOCKED)


def test_success_path_and_idempotence() -> None:
    started = on_build_started(task(), BuildStarted(task_id=7, builder="b1", arch="x86_64"))
    assert started.task.state is TaskState.BUILDING and started.task.builder == "b1"
    again = on_build_started(started.task, BuildStarted(task_id=7, builder="b1", arch="x86_64"))
    assert not again.changed and again.task is started.task
    built = on_build_done(started.task, done(Outcome.SUCCESS), REPO, 3)
    assert built.task.state is TaskState.PUBLISHING and built.emits == ()
    assert not on_build_done(built.task, done(Outcome.SUCCESS), REPO, 3).changed
    published = PackagePublished(task_id=7, source="zlib", release=2, build_release=1,
                                 arch="x86_64", channel="volatile", generation=1, packages=[])
    completed = on_package_published(built.task, published)
    assert completed.task.state is TaskState.COMPLETED
    assert not on_package_published(completed.task, published).changed


def test_build_failure_is_final_and_timeout_too() -> None:
    building = move(task(), TaskState.BUILDING)
    for outcome in (Outcome.FAILED, Outcome.TIMEOUT):
        failed = on_build_done(building, done(outcome), REPO, 0)
        assert failed.task.state is TaskState.FAILED and failed.emits == ()
        assert str(outcome) in (failed.task.failure or "")


def test_infrastructure_is_retried_up_to_the_bound() -> None:
    current = move(task(), TaskState.BUILDING)
    emitted: list[object] = []
    for _ in range(5):
        reaction = on_build_done(current, done(Outcome.INFRASTRUCTURE), REPO, 4, max_attempts=3)
        emitted += reaction.emits
        current = reaction.task
        if current.state is TaskState.FAILED:
            break
        # the stale duplicate of the report that caused the retry changes nothing
        assert not on_build_done(current, done(Outcome.INFRASTRUCTURE), REPO, 4).changed
        current = move(current, TaskState.BUILDING)
    assert current.state is TaskState.FAILED and "gave up after 3" in (current.failure or "")
    assert [e.task_id for e in emitted if isinstance(e, TaskReady)] == [7, 7]
    assert all(isinstance(e, TaskReady) and e.critical_path == 4 for e in emitted)


def test_publish_failed_retryable_then_final() -> None:
    publishing = move(move(task(), TaskState.BUILDING), TaskState.PUBLISHING)
    event = PublishFailed(task_id=7, source="zlib", release=2, arch="x86_64",
                          channel="volatile", reason="network", retryable=True)
    retried = on_publish_failed(publishing, event, REPO, 0)
    assert retried.task.state is TaskState.READY and retried.task.attempt == 2
    assert isinstance(retried.emits[0], TaskReady)
    final = on_publish_failed(publishing, PublishFailed(
        task_id=7, source="zlib", release=2, arch="x86_64", channel="volatile",
        reason="bad signature"), REPO, 0)
    assert final.task.state is TaskState.FAILED
    assert not on_publish_failed(final.task, event, REPO, 0).changed
