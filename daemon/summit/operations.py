"""What an operator may ask of summit (the API's and the CLI's actions), each a direct call
into the planner of the task concerned, applied under the scheduler's lock."""

from __future__ import annotations

from daemon.summit.planning.states import Task
from daemon.summit.scheduler import Scheduler


class Operations:
    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler

    async def retry(self, task_id: int) -> Task:
        """A new task for the source of a failed one; returns the new task."""
        planner = await self.scheduler.decide(task_id, lambda planner: planner.retry(task_id))
        new = planner.latest(planner.tasks[task_id].source)
        assert new is not None  # retry created it
        return new

    async def cancel(self, task_id: int, reason: str = "cancelled by an operator") -> Task:
        """Cancel a task that has not finished; returns it as it is now."""
        planner = await self.scheduler.decide(
            task_id, lambda planner: planner.cancel(task_id, reason))
        return planner.tasks[task_id]
