"""``cairn summit --replay FILE --dry-run``: feed a recorded run to a fresh summit.

The summit is real — same planner, same handlers, its own throw-away database — but it is
connected to a bus that publishes nothing, and it watches nothing: it only sees the events of
the file, in order. What it decides must be what the original summit decided, which makes a
recorded run (``cairn events export``) a reproducible bug report.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from daemon.summit import schema
from daemon.summit.gitrepo import RepoConfig
from daemon.summit.planning.planner import Decision, Planner
from daemon.summit.planning.states import WITHDRAWN, Task
from daemon.summit.scheduler import Scheduler
from daemon.summit.service import Summit, SummitSettings
from events import payloads as p
from events.bus import PublishOnlyBus
from events.envelope import Event, decode_event
from events.errors import CairnError
from events.outbox import OutboxRelay
from events.sqlite import Database


class DryBus(PublishOnlyBus):
    """A bus that accepts everything and sends nothing; it counts what would have gone."""

    def __init__(self) -> None:
        self.would_publish: list[Event[Any]] = []

    async def publish(self, event: Event[Any], *, timeout: float | None = None) -> None:
        self.would_publish.append(event)


def read_events(path: Path) -> list[Event[Any]]:
    """A JSON-lines file of events (``cairn events export``), validated line by line."""
    events = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            events.append(decode_event(line))
        except CairnError as exc:
            raise CairnError(f"{path}:{number}: {exc}") from None
    return events


def repositories_of(events: list[Event[Any]]) -> list[RepoConfig]:
    """The repositories the recorded run watched, as its ``commit-seen`` events name them."""
    found: dict[str, RepoConfig] = {}
    for event in events:
        data = event.data
        if isinstance(data, p.CommitSeen) and data.repository not in found:
            found[data.repository] = RepoConfig(name=data.repository, url=data.url,
                                                branch=data.branch,
                                                arches=tuple(data.arches) or ("x86_64",))
    return list(found.values())


#: What summit consumes. Its assignments (``task-ready``) are replayed as it made them: which
#: builder was free at which moment is timing, not something the events say.
HANDLED = (p.CommitSeen, p.BuilderSeen, p.BuildStarted, p.BuildDone, p.PackagePublished,
           p.PublishFailed)


async def _replay_withdrawal(scheduler: Scheduler, cancelled: p.TaskCancelled) -> None:
    """An assignment summit withdrew before its builder claimed it (an operator's priority
    change, which no event records): withdrawn again, so the attempts it did not count are
    not counted here either."""
    def withdraw(planner: Planner) -> Decision:
        task = planner.tasks.get(cancelled.task_id)
        if task is None or task.attempt != cancelled.attempt:
            return Decision()
        return planner.withdraw(task.task_id, cancelled.reason.removesuffix(f"; {WITHDRAWN}"))

    if scheduler.task(cancelled.task_id) is not None:
        await scheduler.decide(cancelled.task_id, withdraw)


async def replay(path: Path, channel: str = "volatile") -> list[Task]:
    """The task states a fresh summit reaches on the recorded events of ``path``."""
    events = read_events(path)
    repos = repositories_of(events)
    if not repos:
        raise CairnError(f"{path} has no commit-seen event: nothing to plan")
    with tempfile.TemporaryDirectory(prefix="cairn-replay-") as scratch:
        root = Path(scratch)
        async with Database.open(root / "summit.sqlite", schema.MIGRATIONS) as db:
            bus = DryBus()
            summit = Summit(bus, db, OutboxRelay(db, bus),
                            SummitSettings(repositories=repos, mirrors_dir=root / "mirrors",
                                           channel=channel, dispatching=False))
            await summit.prepare()
            for mirror in summit.mirrors.values():
                await mirror.afetch()
            for event in events:
                if isinstance(event.data, HANDLED):
                    await summit.scheduler.handle(event)
                elif isinstance(event.data, p.TaskReady):
                    await summit.scheduler.replay_assignment(event)
                elif isinstance(event.data, p.TaskCancelled) and \
                        event.data.reason.endswith(WITHDRAWN):
                    await _replay_withdrawal(summit.scheduler, event.data)
            return sorted(summit.scheduler.all_tasks(), key=lambda t: t.task_id)
