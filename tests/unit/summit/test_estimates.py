"""What the estimates learn from the scheduler's tasks: running builds' starts, the time
publishing takes (a running average), and each source's last successful build duration."""

from __future__ import annotations

from dataclasses import replace

from daemon.summit.estimates import Learned
from daemon.summit.planning.states import TaskState
from tests.unit.summit.test_states import task


def test_a_build_start_is_kept_until_it_ends_and_publishing_time_is_averaged() -> None:
    learned = Learned()
    building = task(TaskState.BUILDING)
    learned.observe(building, 100.0)
    learned.observe(building, 105.0)  # the same state again: still started at 100
    assert learned.started_at(building.task_id) == 100.0
    learned.observe(replace(building, state=TaskState.PUBLISHING), 160.0)
    assert learned.started_at(building.task_id) is None
    learned.observe(replace(building, state=TaskState.COMPLETED), 170.0)
    assert learned.overhead_s == 0.2 * 10.0  # one sample of 10 s, weight 0.2
    learned.built(building, 60.0)
    assert learned.durations[("recipes", "x86_64", "zlib")] == 60.0


def test_a_task_failing_while_publishing_teaches_no_overhead() -> None:
    learned = Learned()
    publishing = task(TaskState.PUBLISHING)
    learned.observe(publishing, 10.0)
    learned.observe(replace(publishing, state=TaskState.FAILED), 50.0)
    assert learned.overhead_s == 0.0
