"""The task state table and the pure reactions: assignment, claim and admission, reports of
the current attempt only, ownership, retries, loss of a builder."""

from __future__ import annotations

from dataclasses import replace

import pytest

from daemon.summit.planning.states import (
    TRANSITIONS,
    BlockKind,
    BlockReason,
    RepoRef,
    Task,
    TaskReason,
    TaskState,
    TransitionError,
    assign,
    lose,
    move,
    on_build_done,
    on_build_started,
    on_package_published,
    on_publish_failed,
    reblock,
    supersede_running,
    withdraw,
)
from events.envelope import new_event
from events.payloads import (
    Artefact,
    BuildAccepted,
    BuildAdmitted,
    BuildDone,
    BuildDoneV3,
    BuildStarted,
    Outcome,
    PackagePublished,
    PublishFailed,
    TaskCancelled,
    TaskReady,
    Usage,
    UsageV3,
)

REPO = RepoRef(name="recipes", url="https://example.org/recipes.git")


def task(state: TaskState = TaskState.READY, attempt: int = 1,
         builder: str | None = "b1") -> Task:
    return Task(task_id=7, source="zlib", version="1.3", release=2, recipe_path="z/zlib",
                commit="a" * 40, repository="recipes", arch="x86_64",
                reason=TaskReason.NEW, state=state, attempt=attempt, builder=builder)


def claim(builder: str = "b1", attempt: int = 1) -> BuildStarted:
    return BuildStarted(task_id=7, builder=builder, arch="x86_64", attempt=attempt)


def done(outcome: Outcome, attempt: int = 1, builder: str = "b1",
         names: tuple[str, ...] = ("zlib",)) -> BuildDone:
    return BuildDone(task_id=7, attempt=attempt, builder=builder, source="zlib",
                     version="1.3", release=2, build_release=1, arch="x86_64",
                     outcome=outcome, reason="x",
                     artefacts=[Artefact(name=n, filename=f"{n}.tar.zst", url="http://b/a",
                                         sha256="0" * 64, size=1) for n in names])


def building(attempt: int = 1) -> Task:
    return move(task(attempt=attempt), TaskState.BUILDING)


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


def test_assignment_names_the_builder_and_attempt() -> None:
    given = assign(task(builder=None), "b2", 100.0, REPO, 3)
    assert given.task.builder == "b2" and given.task.assigned_at == 100.0
    (ready,) = given.emits
    assert isinstance(ready, TaskReady)
    assert (ready.builder, ready.attempt, ready.critical_path) == ("b2", 1, 3)
    assert not assign(given.task, "b3", 101.0, REPO, 3).changed  # already assigned


def test_claim_of_the_assignment_is_admitted_once_more_claims_are_admitted_again() -> None:
    admitted = on_build_started(task(), claim())
    assert admitted.task.state is TaskState.BUILDING and admitted.task.builder == "b1"
    assert admitted.emits == (BuildAdmitted(task_id=7, attempt=1, builder="b1",
                                            arch="x86_64"),)
    again = on_build_started(admitted.task, claim())
    assert not again.changed and again.emits == admitted.emits


@pytest.mark.parametrize(("current", "who", "expect"), [
    (task(TaskState.CANCELLED), claim(), "is cancelled"),
    (task(TaskState.SUPERSEDED), claim(), "is superseded"),
    (task(attempt=2, builder="b2"), claim("b1", 1), "attempt 2 is on b2"),
    (task(attempt=2, builder=None), claim("b1", 1), "waiting for a builder"),
    (task(TaskState.BUILDING, builder="b2"), claim("b1", 1), "attempt 1"),
    (task(TaskState.COMPLETED), claim(), "already built"),
])
def test_a_claim_summit_no_longer_wants_is_refused_to_that_builder(
        current: Task, who: BuildStarted, expect: str) -> None:
    refused = on_build_started(current, who)
    assert not refused.changed and refused.task is current
    (cancel,) = refused.emits
    assert isinstance(cancel, TaskCancelled)
    assert (cancel.builder, cancel.attempt) == (who.builder, who.attempt)
    assert expect in cancel.reason and refused.note is not None


def test_success_goes_to_vessel_as_build_accepted() -> None:
    built = on_build_done(building(), done(Outcome.SUCCESS), ("zlib",))
    assert built.task.state is TaskState.PUBLISHING
    (accepted,) = built.emits
    assert isinstance(accepted, BuildAccepted)
    assert accepted.packages == ["zlib"] and accepted.build.task_id == 7
    published = PackagePublished(task_id=7, source="zlib", release=2, build_release=1,
                                 arch="x86_64", channel="volatile", generation=1, packages=[])
    completed = on_package_published(built.task, published)
    assert completed.task.state is TaskState.COMPLETED
    assert not on_package_published(completed.task, published).changed


def test_a_version_3_report_goes_to_vessel_in_the_version_2_form_it_reads() -> None:
    report = done(Outcome.SUCCESS)
    v3 = BuildDoneV3(**{f: getattr(report, f) for f in report.__struct_fields__
                        if f != "usage"}, usage=UsageV3(max_rss_kb=10, disk_bytes=1 << 30))
    (accepted,) = on_build_done(building(), v3, ("zlib",)).emits
    assert isinstance(accepted, BuildAccepted) and type(accepted.build) is BuildDone
    assert accepted.build.usage == Usage(max_rss_kb=10)
    assert new_event(accepted, source="summit").cairnversion == 1  # build-accepted v1 as is


def test_a_package_the_source_does_not_own_fails_the_build_and_reaches_nobody() -> None:
    refused = on_build_done(building(), done(Outcome.SUCCESS),
                            "package 'victim' belongs to source 'victim'")
    assert refused.task.state is TaskState.FAILED and refused.emits == ()
    assert "victim" in (refused.task.failure or "")


def test_a_build_that_a_newer_publication_overtook_is_superseded() -> None:
    late = on_build_done(building(), done(Outcome.SUCCESS), ("zlib",), published_release=3)
    assert late.task.state is TaskState.SUPERSEDED and late.emits == ()
    assert "release 3" in (late.task.failure or "")
    stopped = supersede_running(building(), 3)
    assert stopped.task.state is TaskState.SUPERSEDED
    assert [type(e) for e in stopped.emits] == [TaskCancelled]
    assert not supersede_running(building(), 1).changed


@pytest.mark.parametrize("report", [
    done(Outcome.SUCCESS, attempt=1, builder="b1"),   # the attempt that was given up on
    done(Outcome.SUCCESS, attempt=2, builder="b9"),   # a builder that does not hold it
])
def test_reports_of_other_attempts_or_builders_change_nothing(report: BuildDone) -> None:
    current = move(task(attempt=2, builder="b2"), TaskState.BUILDING)
    ignored = on_build_done(current, report, ("zlib",))
    assert not ignored.changed and ignored.emits == ()
    assert ignored.note is not None and "ignored" in ignored.note


def test_build_failure_is_final_and_timeout_too() -> None:
    for outcome in (Outcome.FAILED, Outcome.TIMEOUT, Outcome.SILENT, Outcome.OUTPUT_LIMIT):
        failed = on_build_done(building(), done(outcome), ("zlib",))
        assert failed.task.state is TaskState.FAILED and failed.emits == ()
        assert str(outcome) in (failed.task.failure or "")


def test_infrastructure_is_retried_up_to_the_bound() -> None:
    current = building()
    for attempt in (1, 2):
        retried = on_build_done(current, done(Outcome.INFRASTRUCTURE, attempt=attempt),
                                ("zlib",), max_attempts=3)
        again = retried.task
        assert again.state is TaskState.READY and again.builder is None
        assert again.attempt == attempt + 1 and retried.emits == ()
        # the same report again (redelivered) changes nothing now
        assert not on_build_done(again, done(Outcome.INFRASTRUCTURE, attempt=attempt),
                                 ("zlib",)).changed
        current = move(assign(again, "b1", 0.0, REPO, 0).task, TaskState.BUILDING)
    final = on_build_done(current, done(Outcome.INFRASTRUCTURE, attempt=3), ("zlib",),
                          max_attempts=3)
    assert final.task.state is TaskState.FAILED
    assert "gave up after 3" in (final.task.failure or "")


def test_publish_failed_retryable_then_final() -> None:
    publishing = move(building(), TaskState.PUBLISHING)
    event = PublishFailed(task_id=7, source="zlib", release=2, arch="x86_64",
                          channel="volatile", reason="network", retryable=True)
    retried = on_publish_failed(publishing, event)
    assert retried.task.state is TaskState.READY and retried.task.attempt == 2
    assert retried.task.builder is None
    final = on_publish_failed(publishing, PublishFailed(
        task_id=7, source="zlib", release=2, arch="x86_64", channel="volatile",
        reason="bad signature"))
    assert final.task.state is TaskState.FAILED
    assert not on_publish_failed(final.task, event).changed


def test_losing_the_builder_gives_the_task_to_another_attempt_and_stops_the_old_one() -> None:
    for held in (task(), building()):
        lost = lose(held, "builder b1 was lost")
        assert lost.task.state is TaskState.READY and lost.task.attempt == 2
        assert lost.task.builder is None and "b1 was lost" in (lost.task.failure or "")
        (stop,) = lost.emits
        assert isinstance(stop, TaskCancelled)
        assert (stop.builder, stop.attempt) == ("b1", 1)
    assert not lose(task(builder=None), "x").changed
    assert lose(building(attempt=3), "gone", max_attempts=3).task.state is TaskState.FAILED


def test_an_unclaimed_assignment_withdrawn_waits_again_as_an_attempt_that_is_no_try() -> None:
    taken = withdraw(task(attempt=2), "a task ahead takes the slot")
    again = taken.task
    assert again.state is TaskState.READY and again.builder is None
    assert (again.attempt, again.withdrawn, again.tries) == (3, 1, 2)
    (stop,) = taken.emits
    assert isinstance(stop, TaskCancelled) and (stop.builder, stop.attempt) == ("b1", 2)
    assert "withdrawn" in stop.reason and "b1 (attempt 2) withdrawn" in (taken.note or "")
    # The withdrawn attempt's late claim is refused to its builder: it never starts.
    refused = on_build_started(again, claim("b1", attempt=2))
    assert not refused.changed and isinstance(refused.emits[0], TaskCancelled)
    # A withdrawn attempt is not counted: with a bound of 3, attempt 4 (one withdrawn) is
    # the third try, and losing it fails the task only then.
    fourth = replace(assign(again, "b2", 0, REPO, 0).task, attempt=4)
    assert fourth.tries == 3
    assert lose(replace(fourth, attempt=3), "gone", max_attempts=3).task.state \
        is TaskState.READY
    assert lose(fourth, "gone", max_attempts=3).task.state is TaskState.FAILED
    # Claimed (building) or not assigned: nothing to withdraw.
    assert not withdraw(building(), "x").changed
    assert not withdraw(task(builder=None), "x").changed


def test_a_ready_task_reblocked_loses_its_unclaimed_assignment_a_building_one_runs_on() -> None:
    why = (BlockReason(BlockKind.UNRESOLVABLE, name="binary(gcc)"),)
    taken = reblock(task(attempt=2), why)
    assert taken.task.state is TaskState.BLOCKED and taken.task.blocked_by == why
    assert (taken.task.builder, taken.task.attempt, taken.task.tries) == (None, 3, 2)
    (stop,) = taken.emits
    assert isinstance(stop, TaskCancelled) and (stop.builder, stop.attempt) == ("b1", 2)
    assert "binary(gcc)" in stop.reason
    waiting = reblock(task(builder=None), why)
    assert waiting.task.state is TaskState.BLOCKED and waiting.emits == ()
    assert not reblock(building(), why).changed
    assert not reblock(task(), ()).changed
