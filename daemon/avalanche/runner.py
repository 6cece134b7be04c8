"""Running a build from the event loop: a thread per build, a handle to cancel it.

:func:`start_build` is what the service shell calls for a ``task-ready``. The build runs in
a worker thread (:func:`~.build.run_build` blocks); its log lines are delivered to
``on_line`` *on the event loop* (through ``call_soon_threadsafe``), in order, so the callback
may publish to MQTT directly. :meth:`RunningBuild.cancel` (for ``task-cancelled``, or on
shutdown) sets the build's cancel event: the running step's process group is killed and the
result comes back with outcome ``cancelled``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from events.payloads import TaskReady

from .build import BuildResult, new_build_id, run_build
from .config import AvalancheConfig


@dataclass
class RunningBuild:
    task: TaskReady
    build_id: str
    future: asyncio.Future[BuildResult]
    cancel_event: threading.Event = field(default_factory=threading.Event)
    cancel_reason: str | None = None

    def cancel(self, reason: str = "cancelled") -> None:
        """Stop the build; :meth:`wait` then returns outcome ``cancelled``."""
        self.cancel_reason = reason
        self.cancel_event.set()

    async def wait(self) -> BuildResult:
        return await asyncio.shield(self.future)


def start_build(
    task: TaskReady, config: AvalancheConfig, on_line: Callable[[str], object] | None = None
) -> RunningBuild:
    """Start building ``task`` in a thread; call from the event loop."""
    loop = asyncio.get_running_loop()
    cancel = threading.Event()
    build_id = new_build_id(task.task_id)

    def forward(line: str) -> None:
        if on_line is not None and not loop.is_closed():
            loop.call_soon_threadsafe(on_line, line)

    future = asyncio.ensure_future(
        asyncio.to_thread(run_build, task, config, forward, cancel, build_id=build_id)
    )
    return RunningBuild(task=task, build_id=build_id, future=future, cancel_event=cancel)
