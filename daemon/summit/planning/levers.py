"""The operator's levers on dispatch: pause (the farm, or one repository) and drain (one
builder).

Pausing stops *new* assignments only: builds running go on, assignments already made are
claimed as usual, and resuming lets the queue drain in its usual order. A drained builder
finishes what it holds and is given nothing new; enabling it makes it a candidate again. The
levers are summit's alone: the builder is not told (it simply receives no work), and summit
shows it as ``draining``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from daemon.summit.planning.fleet import Builder
from daemon.summit.planning.states import Task


@dataclass(frozen=True, slots=True)
class Levers:
    paused: bool = False
    paused_repositories: frozenset[str] = frozenset()
    drained: frozenset[str] = frozenset()

    def holds(self, task: Task) -> bool:
        """Whether a pause keeps ``task`` from being assigned now."""
        return self.paused or task.repository in self.paused_repositories

    def pause_reason(self, task: Task) -> str | None:
        if self.paused:
            return "dispatch is paused for the whole farm"
        if task.repository in self.paused_repositories:
            return f"dispatch is paused for repository {task.repository}"
        return None

    def takes_work(self, builder: Builder) -> bool:
        return builder.takes_work and builder.name not in self.drained

    def pause(self, repository: str | None, on: bool) -> Levers:
        """Pause (``on``) or resume the farm (``repository`` None) or one repository."""
        if repository is None:
            return replace(self, paused=on)
        repos = self.paused_repositories | {repository} if on \
            else self.paused_repositories - {repository}
        return replace(self, paused_repositories=repos)

    def drain(self, builder: str, on: bool) -> Levers:
        drained = self.drained | {builder} if on else self.drained - {builder}
        return replace(self, drained=drained)

    def to_json(self) -> dict[str, object]:
        return {"paused": self.paused,
                "paused_repositories": sorted(self.paused_repositories),
                "drained": sorted(self.drained)}
