"""The queue page's read models: columns that say what they hold, a search, one task's
ancestors and descendants, and a drawing small enough to follow.

Why not draw the whole queue: at a distribution's size (hundreds to tens of thousands of
open tasks) every edge drawn at once is a solid mass no one can follow, and shipping it all
makes the page slow. The page summarises the columns, lists what a search finds one page at
a time, and draws a graph only for a small selection or around one task (its focus), with
only the edges of that selection.
"""

from __future__ import annotations

import re
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import translate

from daemon.summit.planning.graph import strongly_connected
from daemon.summit.planning.states import TaskState
from daemon.summit.planning.views import Graph, Node

#: Nodes drawn at most: a selection or a focus larger than this is cut (focus: the nearest
#: first) or listed instead.
DRAW_LIMIT = 80
#: Names shown per column in the summary.
SAMPLE = 4
_STUCK_RANK = 1_000_000


def column_of(node: Node) -> tuple[int, str]:
    """The column a task is drawn in, as (rank, key): running builds split by what they do,
    then the build waves, then what cannot start."""
    if node.state == TaskState.BUILDING:
        return 0, "building"
    if node.state == TaskState.PUBLISHING:
        return 1, "publishing"
    if node.stuck or not node.step:
        return _STUCK_RANK, "stuck"
    return 1 + node.step, f"wave-{node.step}"


def column_title(key: str) -> str:
    """What a column holds, in words."""
    if key == "building":
        return "building now"
    if key == "publishing":
        return "publishing: waiting for the repository"
    if key == "stuck":
        return "cannot start"
    step = key.removeprefix("wave-")
    return f"wave {step}: next" if step == "1" else f"wave {step}"


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    title: str
    count: int
    #: The first few names (by source), for the summary.
    sample: tuple[str, ...]
    states: tuple[tuple[str, int], ...]


def columns(nodes: Iterable[Node]) -> list[Column]:
    """Every column with how many tasks it holds and a few of their names."""
    grouped: dict[tuple[int, str], list[Node]] = {}
    for node in nodes:
        grouped.setdefault(column_of(node), []).append(node)
    out = []
    for rank_key in sorted(grouped):
        members = grouped[rank_key]
        names = sorted(n.source for n in members)[:SAMPLE]
        states = Counter(n.state for n in members)
        out.append(Column(rank_key[1], column_title(rank_key[1]), len(members), tuple(names),
                          tuple(sorted(states.items()))))
    return out


def matcher(pattern: str) -> Callable[[Node], bool]:
    """A source pattern: shell-style when it has ``*?[``, else a case-insensitive part
    (read once, then tried on every node of a search)."""
    pattern = pattern.lower()
    if any(c in pattern for c in "*?["):
        compiled = re.compile(translate(pattern))
        return lambda node: compiled.match(node.source.lower()) is not None
    return lambda node: pattern in node.source.lower()


@dataclass(frozen=True, slots=True)
class QueueIndex:
    """The queue graph indexed once for the pages: its nodes in list order (column, then
    source) and by id, and its edges both ways. Built with the graph, off the request path,
    so a search, a focus or a drawing costs what it shows, not the size of the queue."""

    graph: Graph
    ordered: tuple[Node, ...]
    by_id: Mapping[int, Node]
    #: Task → the tasks it waits for, and task → the tasks waiting for it.
    waits: Mapping[int, tuple[int, ...]]
    waited: Mapping[int, tuple[int, ...]]

    def degrees(self, task_id: int) -> tuple[int, int]:
        """How many tasks it waits for, and how many wait for it."""
        return len(self.waits.get(task_id, ())), len(self.waited.get(task_id, ()))


def index(graph: Graph) -> QueueIndex:
    waits: dict[int, list[int]] = {}
    waited: dict[int, list[int]] = {}
    for a, b in graph.edges:
        waits.setdefault(a, []).append(b)
        waited.setdefault(b, []).append(a)
    ordered = sorted(graph.nodes, key=lambda n: (column_of(n)[0], n.source, n.task_id))
    return QueueIndex(graph, tuple(ordered), {n.task_id: n for n in graph.nodes},
                      {k: tuple(v) for k, v in waits.items()},
                      {k: tuple(v) for k, v in waited.items()})


def select(queue: QueueIndex, *, state: str | None = None, pattern: str | None = None,
           repository: str | None = None, arch: str | None = None,
           column: str | None = None) -> Sequence[Node]:
    """The nodes a search asks for, in column order, then by source."""
    if not (state or pattern or repository or arch or column):
        return queue.ordered
    named = matcher(pattern) if pattern else None
    return [n for n in queue.ordered
            if (state is None or n.state == state)
            and (repository is None or n.repository == repository)
            and (arch is None or n.arch == arch)
            and (column is None or column_of(n)[1] == column)
            and (named is None or named(n))]


def subgraph(queue: QueueIndex, keep: Iterable[int]) -> Graph:
    """The nodes in ``keep`` and only the edges between them."""
    kept = [i for i in dict.fromkeys(keep) if i in queue.by_id]
    inside = set(kept)
    return Graph(tuple(queue.by_id[i] for i in kept),
                 tuple((a, b) for a in kept for b in queue.waits.get(a, ()) if b in inside))


@dataclass(frozen=True, slots=True)
class Focus:
    """One task with what it waits for (ancestors, transitively) and what waits for it
    (descendants): the drawing holds the edges among the ancestors and among the
    descendants, through the task — never a shortcut from a descendant to an ancestor."""

    node: Node
    graph: Graph
    ancestors: int
    descendants: int
    #: Ancestors and descendants left out of the drawing (the farthest first).
    cut: int


def _reach(start: int, succ: Mapping[int, Sequence[int]]) -> list[int]:
    """Nodes reachable from ``start`` (itself excluded), nearest first."""
    seen = {start}
    order: list[int] = []
    todo = deque([start])
    while todo:
        for nxt in succ.get(todo.popleft(), ()):
            if nxt not in seen:
                seen.add(nxt)
                order.append(nxt)
                todo.append(nxt)
    return order


def focus(queue: QueueIndex, task_id: int, limit: int = DRAW_LIMIT) -> Focus | None:
    """The focus view of ``task_id`` (None when it is not in the queue)."""
    node = queue.by_id.get(task_id)
    if node is None:
        return None
    up, down = _reach(task_id, queue.waits), _reach(task_id, queue.waited)
    room = max(limit - 1, 0)
    shown_up = up[:max(room // 2, room - len(down))]
    shown_down = down[:room - len(shown_up)]
    above, below = {task_id, *shown_up}, {task_id, *shown_down}
    keep = [task_id, *shown_up, *shown_down]
    edges = tuple((a, b) for a in dict.fromkeys(keep) for b in queue.waits.get(a, ())
                  if (a in above and b in above) or (a in below and b in below))
    nodes = tuple(queue.by_id[i] for i in dict.fromkeys(keep))
    # In a cycle a task is its own ancestor's descendant: count each task once.
    related = set(up) | set(down)
    return Focus(node, Graph(nodes, edges), len(up), len(down),
                 len(related) - len((above | below) - {task_id}))


@dataclass(frozen=True, slots=True)
class Placed:
    node: Node
    x: float
    y: float


@dataclass(frozen=True, slots=True)
class Layout:
    width: float
    height: float
    nodes: tuple[Placed, ...]
    #: (SVG path, from id, to id): from the waiting task's box to the box of the task it
    #: waits for.
    edges: tuple[tuple[str, int, int], ...]
    node_width: float
    node_height: float
    #: (x of the column, its heading).
    columns: tuple[tuple[float, str], ...] = ()


def levels(graph: Graph) -> dict[int, int]:
    """Each node's depth in the drawing: 0 when it waits for nothing drawn, else one more
    than the deepest it waits for; a cycle's members share one level."""
    waits: dict[str, list[str]] = {}
    for a, b in graph.edges:
        waits.setdefault(str(a), []).append(str(b))
    level: dict[str, int] = {}
    # Components come out dependencies first: what a component waits for has its level.
    for component in strongly_connected((str(n.task_id) for n in graph.nodes),
                                        lambda s: waits.get(s, ())):
        inside = set(component)
        depth = max((level[d] + 1 for m in component for d in waits.get(m, ())
                     if d not in inside and d in level), default=0)
        for member in component:
            level[member] = depth
    return {int(k): v for k, v in level.items()}


def _drawn_column(node: Node, level: int) -> tuple[int, int, str]:
    """Running builds, then the waves; what cannot start is spread by its depth in the
    drawing (all of it is in one column of the queue, and edges within one column could
    not be followed)."""
    rank, key = column_of(node)
    if key != "stuck":
        return rank, 0, column_title(key)
    return rank, level, "cannot start" if not level else f"cannot start ({level + 1})"


def _curve(a: Placed, b: Placed, width: float, height: float) -> str:
    """An SVG path from the box of ``a`` to the box of ``b`` (what it waits for): from a's
    left side to b's right side, or, within one column (a cycle), an arc on the right."""
    y1, y2 = a.y + height / 2, b.y + height / 2
    if a.x == b.x:
        x = a.x + width
        bulge = 24 + min(abs(y2 - y1) / 8, 40)
        return f"M{x:g},{y1:g} C{x + bulge:g},{y1:g} {x + bulge:g},{y2:g} {x:g},{y2:g}"
    x1, x2 = a.x, b.x + width
    return f"M{x1:g},{y1:g} C{x1 - 40:g},{y1:g} {x2 + 40:g},{y2:g} {x2:g},{y2:g}"


def layout(graph: Graph, *, node_width: float = 170, node_height: float = 30,
           column_gap: float = 60, row_gap: float = 10, margin: float = 10) -> Layout:
    """Columns (left: what is running, then the waves, then what cannot start), rows by
    source name. Edges go from a task to what it waits for, so they point left."""
    depth = levels(graph)
    grouped: dict[tuple[int, int, str], list[Node]] = {}
    for node in graph.nodes:
        grouped.setdefault(_drawn_column(node, depth.get(node.task_id, 0)), []).append(node)
    placed: dict[int, Placed] = {}
    headings: list[tuple[float, str]] = []
    top = margin + 24
    for index, key in enumerate(sorted(grouped)):
        x = margin + index * (node_width + column_gap)
        headings.append((x, key[2]))
        for row, node in enumerate(sorted(grouped[key], key=lambda n: n.source)):
            placed[node.task_id] = Placed(node, x, top + row * (node_height + row_gap))
    lines = [(_curve(placed[a], placed[b], node_width, node_height), a, b)
             for a, b in graph.edges if a in placed and b in placed and a != b]
    width = margin * 2 + max(len(grouped), 1) * (node_width + column_gap) - column_gap
    rows = max((len(c) for c in grouped.values()), default=1)
    height = top + margin + rows * (node_height + row_gap) - row_gap
    return Layout(width, height, tuple(placed.values()), tuple(lines), node_width,
                  node_height, tuple(headings))


def page_of(items: Sequence[Node], number: int, size: int) -> tuple[list[Node], int, int]:
    """One page of a list: (its items, the page number kept in range, the number of pages)."""
    pages = max(1, -(-len(items) // size))
    number = min(max(number, 1), pages)
    return list(items[(number - 1) * size:number * size]), number, pages
