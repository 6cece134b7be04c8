"""Which builds a repository needs again when an operator points it at another build
environment: pure, no I/O.

Pointing a repository at a new environment is the only thing that rebuilds what is already
built without a recipe change, and only when an operator asks for it: every source whose
current recipe release is published, or on its way (building, publishing), is built again
with the next build release (so vessel takes it as newer), reason "build environment
changed". A build still running in the old environment is cancelled: what it makes is what
the operator just replaced. A task not started yet needs nothing: it is assigned with the
repository's environment of the moment it is given to a builder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from daemon.summit.planning.graph import PublishedIndex
from daemon.summit.planning.recipe import PlannedRecipe
from daemon.summit.planning.states import NOT_STARTED, Task, TaskState


@dataclass(frozen=True, slots=True)
class Rebuild:
    """One source to build again at ``build_release``; ``cancel``: its running build."""

    source: str
    build_release: int
    cancel: Task | None = None


def rebuilds(recipes: Mapping[str, PlannedRecipe], arch: str, published: PublishedIndex,
             latest: Callable[[str], Task | None],
             tasks_of: Callable[[str], Iterable[Task]]) -> list[Rebuild]:
    """The rebuilds of every source of ``recipes`` built on ``arch``, by name."""
    out = []
    for source, recipe in sorted(recipes.items()):
        if not recipe.builds_for(arch):
            continue
        last = latest(source)
        if last is not None and last.state in NOT_STARTED:
            continue
        on_its_way = last is not None and last.state in (TaskState.BUILDING,
                                                         TaskState.PUBLISHING)
        if not on_its_way and published.releases.get(source) != recipe.release:
            continue  # not built at this release: the ordinary plan builds it
        same = [t.build_release for t in tasks_of(source) if t.release == recipe.release]
        cancel = last if last is not None and last.state is TaskState.BUILDING else None
        out.append(Rebuild(source, max(same, default=1) + 1, cancel))
    return out
