"""What the API and the dashboard show, computed from the planners' state without any I/O.

Why a module of its own: the JSON API and the HTML pages must say the same thing (the same
blocker sentence, the same queue graph), and these are plain functions over data, tested
without a server.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from daemon.summit.planning.eta import Expected
from daemon.summit.planning.planner import Planner
from daemon.summit.planning.states import BlockKind, BlockReason, Task, TaskState

#: The order states are shown in (the order a task moves through them).
STATE_ORDER: tuple[str, ...] = tuple(TaskState)
#: States in which a task is still to be built: the open queue.
OPEN = frozenset({TaskState.NEW, TaskState.BLOCKED, TaskState.READY, TaskState.BUILDING,
                  TaskState.PUBLISHING})
#: Cycles longer than this are listed, not walked (a walk is only a nicety).
_WALK_LIMIT = 12


@dataclass(frozen=True)
class Part:
    """A piece of a sentence; ``task_id`` makes it a link to that task."""

    text: str
    task_id: int | None = None


@dataclass(frozen=True)
class Explanation:
    """A blocker in words, as parts so a page can link the tasks it names."""

    kind: str
    parts: tuple[Part, ...]

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.parts)

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind, "text": self.text,
                "tasks": [p.task_id for p in self.parts if p.task_id is not None],
                "parts": [{"text": p.text, "task": p.task_id} for p in self.parts]}


def explain(reason: BlockReason, task_of: Mapping[int, Task],
            edges: Mapping[str, Iterable[str]] | None = None) -> Explanation:
    """One blocker as a sentence a person can act on.

    ``task_of`` finds the tasks a reason names (for a failed one, its failure is quoted);
    ``edges`` (source → sources it waits for) orders a cycle's members as a walk.
    """
    kind = str(reason.kind)
    if reason.kind is BlockKind.DEPENDENCY:
        if reason.task_id is None:
            return Explanation(kind, (Part(f"waiting for {reason.source}, which has no build "
                                           "planned and nothing published"),))
        return Explanation(kind, (Part("waiting for "),
                                  Part(f"{reason.source} (task {reason.task_id})",
                                       reason.task_id),
                                  Part(" to be published")))
    if reason.kind is BlockKind.FAILED:
        failed = task_of.get(reason.task_id) if reason.task_id is not None else None
        why = failed.failure if failed is not None and failed.failure else "no reason given"
        label = f"failed task {reason.task_id}" if reason.task_id is not None \
            else f"the failed build of {reason.source}"
        return Explanation(kind, (Part("depends on "), Part(label, reason.task_id),
                                  Part(f" ({reason.source}): {why}")))
    if reason.kind is BlockKind.CYCLE:
        walk = cycle_walk(reason.members, edges or {})
        shown = " → ".join(walk) if walk else ", ".join(reason.members)
        what = "part of cycle " if walk else "part of a cycle among "
        return Explanation(kind, (Part(f"{what}{shown}, nothing published to build "
                                       "against"),))
    return Explanation(kind, (Part(f"nothing provides {reason.name}"),))


def cycle_walk(members: Sequence[str], edges: Mapping[str, Iterable[str]]) -> list[str]:
    """``[a, b, c, a]``: the members in an order that follows the dependency edges and
    returns to the start, or ``[]`` when none is found (or the cycle is too long to try)."""
    if not members:
        return []
    if len(members) == 1:
        return [members[0], members[0]]
    if len(members) > _WALK_LIMIT:
        return []
    inside = set(members)
    start = members[0]
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    while stack:
        node, path = stack.pop()
        for nxt in sorted(edges.get(node, ())):
            if nxt == start and len(path) == len(members):
                return [*path, start]
            if nxt in inside and nxt not in path:
                stack.append((nxt, [*path, nxt]))
    return []


def explain_task(task: Task, planner: Planner) -> list[Explanation]:
    """Every blocker of ``task`` in words."""
    return [explain(r, planner.tasks, planner.schedule.edges) for r in task.blocked_by]


def counts(tasks: Iterable[Task]) -> dict[str, int]:
    """Tasks by state, every state present (zero included) in the display order."""
    found = Counter(str(t.state) for t in tasks)
    return {state: found.get(state, 0) for state in STATE_ORDER}


# -- the open queue as a graph -------------------------------------------------------------
@dataclass(frozen=True)
class Node:
    task_id: int
    source: str
    state: str
    repository: str
    arch: str
    #: The column: 0 for what is already running, then the build waves; stuck tasks last.
    wave: int
    critical_path: int
    #: It cannot start as things stand (a blocked cycle, a failed or unresolvable
    #: dependency, or downstream of one).
    stuck: bool = False
    #: Its build wave counted from 1 (what waits for nothing not yet started); 0 when it is
    #: running or stuck.
    step: int = 0
    #: When it is expected to start and finish (:mod:`.eta`); ``None``: no estimate.
    expected_start: float | None = None
    expected_finish: float | None = None

    def to_json(self) -> dict[str, object]:
        return {"id": self.task_id, "source": self.source, "state": self.state,
                "repository": self.repository, "arch": self.arch, "wave": self.wave,
                "critical_path": self.critical_path, "stuck": self.stuck,
                "expected_start": self.expected_start,
                "expected_finish": self.expected_finish}


@dataclass(frozen=True)
class Graph:
    nodes: tuple[Node, ...]
    #: (task, the task it waits for).
    edges: tuple[tuple[int, int], ...]

    def to_json(self) -> dict[str, object]:
        return {"nodes": [n.to_json() for n in self.nodes],
                "edges": [{"from": a, "to": b} for a, b in self.edges]}


def queue_graph(planners: Iterable[Planner],
                expected: Mapping[int, Expected] | None = None) -> Graph:
    """Open tasks as nodes, "waits for" as edges, in columns: running work first, then the
    waves in which the rest would build, then what cannot start (a blocked cycle, a failed
    or unresolvable dependency); each with its expected start and finish, when known."""
    expected = expected or {}
    nodes: list[Node] = []
    edges: list[tuple[int, int]] = []
    for planner in planners:
        open_tasks = planner.open_tasks()
        ids = {t.source: t.task_id for t in open_tasks}
        started = any(t.state not in (TaskState.NEW, TaskState.BLOCKED, TaskState.READY)
                      for t in open_tasks)
        shift = 1 if started else 0
        step_of = {s: k + 1 for k, wave in enumerate(planner.waves()) for s in wave}
        wave_of = {s: k + shift - 1 for s, k in step_of.items()}
        last = max(wave_of.values(), default=shift - 1) + 1
        for task in sorted(open_tasks, key=lambda t: t.task_id):
            running = task.state in (TaskState.BUILDING, TaskState.PUBLISHING)
            stuck = not running and task.source not in wave_of
            wave = 0 if running else wave_of.get(task.source, last)
            eta = expected.get(task.task_id)
            nodes.append(Node(task.task_id, task.source, str(task.state), task.repository,
                              task.arch, wave, planner.critical_path(task.source), stuck,
                              0 if running else step_of.get(task.source, 0),
                              eta.start if eta else None, eta.finish if eta else None))
            schedule = planner.schedule
            # A cycle edge broken by building against the published member is no wait.
            waits = set(schedule.edges.get(task.source, ())) - \
                schedule.broken.get(task.source, set())
            for dep in sorted(waits):
                if dep in ids and dep != task.source:
                    edges.append((task.task_id, ids[dep]))
    return Graph(tuple(nodes), tuple(edges))
