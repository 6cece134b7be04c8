"""The pending-build graph: which open task waits for which, cycles, critical paths, waves.

Nodes are sources whose latest task is pending; a node that has not started has an edge to
every pending source that provides one of its build dependencies. The graph is updated for
the sources a change touched (and the cycles they were part of), never rebuilt wholesale,
so a ten-recipe commit on a 50,000-recipe tree costs what those ten recipes reach.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from copy import copy

from daemon.formats.manifest import normalise
from daemon.summit.planning.graph import (
    Holders,
    PublishedIndex,
    RecipeGraph,
    add_holder,
    break_cycles,
    copy_holders,
    discard_holder,
    holders_of,
    longest_chains,
    strongly_connected,
)
from daemon.summit.planning.states import PENDING, BlockKind, BlockReason, Task, TaskState

Lookup = Callable[[str], Task | None]
_KIND_ORDER = {BlockKind.CYCLE: 0, BlockKind.UNRESOLVABLE: 1, BlockKind.FAILED: 2,
               BlockKind.DEPENDENCY: 3}


class Schedule:
    """Edges between pending sources, broken cycle edges, blocked cycles, critical paths."""

    def __init__(
        self, graph: RecipeGraph, published: PublishedIndex, pending: Lookup, not_started: Lookup
    ) -> None:
        self.graph = graph
        self.published = published
        self.pending = pending
        self.not_started = not_started
        self.edges: dict[str, frozenset[str]] = {}
        self.redges: dict[str, Holders] = {}
        #: ``broken[u]``: sources u builds against the published version of (cycle breaking).
        self.broken: dict[str, set[str]] = {}
        #: Members of the blocked (unbreakable) cycle a source is in.
        self.cycle_of: dict[str, frozenset[str]] = {}
        #: Members of the strongly connected block a source was last found in.
        self.scc_of: dict[str, frozenset[str]] = {}
        self.cp: dict[str, int] = {}
        #: What the repository's build environment provides (normalised names): a build
        #: dependency nothing in the channel provides resolves against it, and only it.
        self.environment: frozenset[str] = frozenset()

    def set_environment(self, provides: Iterable[str]) -> None:
        self.environment = frozenset(normalise(p) for p in provides)

    def in_environment(self, name: str) -> bool:
        return normalise(name) in self.environment

    def snapshot(self, pending: Lookup, not_started: Lookup) -> Schedule:
        """A copy of the maps, answering ``pending``/``not_started`` from a snapshot of the
        planner (see :meth:`Planner.snapshot`)."""
        twin = copy(self)
        twin.pending, twin.not_started = pending, not_started
        twin.edges = dict(self.edges)
        twin.redges = copy_holders(self.redges)
        twin.broken = {s: set(b) for s, b in self.broken.items()}
        twin.cycle_of = dict(self.cycle_of)
        twin.scc_of = dict(self.scc_of)
        twin.cp = dict(self.cp)
        return twin

    def update(
        self, affected: Iterable[str], latest: Lookup
    ) -> dict[str, tuple[BlockReason, ...]]:
        """Refresh the graph around ``affected``; return the block reasons of every
        not-started source whose standing may have changed (empty tuple: ready)."""
        seeds = set(affected)
        whole = len(seeds) * 4 > len(self.edges)  # a first plan, or as good as
        # What each source really waited for before: critical paths change along the
        # edges that appear or disappear, and nowhere else.
        before = {} if whole else {s: set(self.effective_deps(s)) for s in seeds}
        old_targets: set[str] = set()
        for source in seeds:
            old_targets |= self._set_edges(source)
        touched, cut_before = self._cycles(seeds)
        evaluate = {s for s in seeds | touched if self.not_started(s) is not None}
        statuses = {s: self.reasons(s, latest) for s in evaluate}
        if whole:  # every critical path below, in Kahn's order, once each
            region = self._closure(seeds | touched | old_targets, self.effective_deps)
            self.cp.update(longest_chains(region, self.effective_dependents,
                                          self.effective_deps, self.cp))
            return statuses
        for source in (touched | cut_before.keys()) - seeds:  # its edges are unchanged
            before[source] = set(self.edges.get(source, ())) - cut_before.get(source, set())
        self._critical_paths(seeds, before)
        return statuses

    # -- edges -------------------------------------------------------------------------
    def _set_edges(self, source: str) -> set[str]:
        old = self.edges.pop(source, frozenset())
        new: frozenset[str] = frozenset()
        recipe = self.graph.recipes.get(source)
        if recipe is not None and self.not_started(source) is not None:
            new = frozenset(
                p for name in recipe.build_deps for p in self.graph.recipe_providers(name)
                if self.pending(p) is not None
            )
        for target in old - new:
            discard_holder(self.redges, target, source)
        for target in new - old:
            add_holder(self.redges, target, source)
        if new:
            self.edges[source] = new
        return set(old | new)

    def effective_deps(self, source: str) -> list[str]:
        """Pending providers ``source`` really waits for (cycles broken or blocked aside)."""
        targets = self.edges.get(source)
        if not targets:
            return []
        broken = self.broken.get(source, ())
        cycle = self.cycle_of.get(source, ())
        return [t for t in targets if t not in broken and t not in cycle]

    def effective_dependents(self, source: str) -> list[str]:
        out = []
        for user in holders_of(self.redges, source):
            if source in self.broken.get(user, ()) or source in self.cycle_of.get(user, ()):
                continue
            out.append(user)
        return out

    # -- cycles ------------------------------------------------------------------------
    def _cycles(self, seeds: set[str]) -> tuple[set[str], dict[str, set[str]]]:
        """Recompute the strongly connected blocks reachable from ``seeds`` (and the blocks
        they were in); returns every source whose cycle standing may have changed, and
        the edges each source of the region had broken or blocked before."""
        start = set(seeds)
        for source in seeds:
            start |= self.scc_of.get(source, frozenset())
        region = self._closure(start, lambda s: self.edges.get(s, ()))
        touched = start - seeds
        cut: dict[str, set[str]] = {}  # what each source did not wait for, before
        for source in region:
            was_broken = self.broken.pop(source, None)
            was_cycle = self.cycle_of.pop(source, None)
            if was_broken or was_cycle:
                cut[source] = set(was_broken or ()) | set(was_cycle or ())
            if self.scc_of.pop(source, None) is not None:
                touched.add(source)
        for component in strongly_connected(region, lambda s: self.edges.get(s, ())):
            if len(component) == 1 and component[0] not in self.edges.get(component[0], ()):
                continue
            members = frozenset(component)
            touched |= members
            for member in members:
                self.scc_of[member] = members
            broken, blocked = break_cycles(
                members, lambda s: self.edges.get(s, ()), self._breakable
            )
            for u, v in broken:
                self.broken.setdefault(u, set()).add(v)
            for cycle in blocked:
                for member in cycle:
                    self.cycle_of[member] = frozenset(cycle)
        return touched, cut

    def _breakable(self, user: str, member: str) -> bool:
        """``user`` may build against the published ``member`` for every name linking them."""
        if member not in self.published.releases:
            return False
        recipe = self.graph.recipes[user]
        for name in recipe.build_deps:
            if member in self.graph.recipe_providers(name) and member not in (
                self.published.providers_of(name)
            ):
                return False
        return True

    @staticmethod
    def _closure(start: Iterable[str], succ: Callable[[str], Iterable[str]]) -> set[str]:
        seen = set(start)
        stack = list(seen)
        while stack:
            for target in succ(stack.pop()):
                if target not in seen:
                    seen.add(target)
                    stack.append(target)
        return seen

    # -- status ------------------------------------------------------------------------
    def reasons(self, source: str, latest: Lookup) -> tuple[BlockReason, ...]:
        """Why ``source``'s task cannot start (empty: it can): a pending provider, a failed
        one, a cycle with no published member, a name that nothing provides: no recipe, no
        package of the channel, nothing in the build environment."""
        recipe = self.graph.recipes.get(source)
        if recipe is None:
            return ()
        out: dict[tuple[str, str], BlockReason] = {}
        cycle = self.cycle_of.get(source, frozenset())
        if cycle:
            out[("cycle", "")] = BlockReason(BlockKind.CYCLE, members=tuple(sorted(cycle)))
        broken = self.broken.get(source, ())
        for name in recipe.build_deps:
            providers = self.graph.recipe_providers(name)
            if not providers:
                if not self.published.provides(name) and not self.in_environment(name):
                    out[("name", name)] = BlockReason(BlockKind.UNRESOLVABLE, name=name)
                continue
            for provider in providers:
                reason = self._provider_reason(provider, latest, broken, cycle)
                if reason is not None:
                    out[(str(reason.kind), provider)] = reason
        return tuple(sorted(out.values(), key=lambda r: (_KIND_ORDER[r.kind], r.source or "",
                                                         r.name or "")))

    def _provider_reason(
        self, provider: str, latest: Lookup, broken: Iterable[str], cycle: frozenset[str]
    ) -> BlockReason | None:
        task = latest(provider)
        published = self.published.releases.get(provider)
        if task is not None and task.state in PENDING:
            if provider in broken or provider in cycle:
                return None
            return BlockReason(BlockKind.DEPENDENCY, source=provider, task_id=task.task_id)
        if task is not None and task.state is TaskState.FAILED:
            if published is None or published < task.release:
                return BlockReason(BlockKind.FAILED, source=provider, task_id=task.task_id)
            return None
        if published is None:
            return BlockReason(BlockKind.DEPENDENCY, source=provider)
        return None

    # -- ordering ----------------------------------------------------------------------
    def _critical_paths(self, seeds: set[str], before: dict[str, set[str]]) -> None:
        """Bring ``cp`` (the longest chain of dependents above each source) up to date after
        the edges of the sources in ``before`` changed (``before``: what each waited for).

        A value is raised where an edge appears (no scan), recomputed from all its
        dependents only where an edge that may have carried its maximum disappears, and a
        change goes on only to what the changed source waits for. A publication in a mass
        rebuild, or a ten-recipe commit with every task open, changes a few values;
        recomputing everything below a change (a core library's thousands of users, each
        time) was most of their cost. ``seeds`` (whose tasks changed) are recomputed.
        """
        cp = self.cp
        ceiling = len(self.edges) + 1  # no chain of a DAG is longer: a cycle, left alone
        rescan: deque[str] = deque(sorted(seeds))
        queued = set(rescan)
        raises: list[tuple[str, int]] = []

        def changed(node: str, old: int, new: int) -> None:
            for target in self.effective_deps(node):
                if new > old:
                    raises.append((target, new + 1))
                elif cp.get(target, 0) == old + 1 and target not in queued:
                    queued.add(target)
                    rescan.append(target)

        for source, old_deps in before.items():
            new_deps = set(self.effective_deps(source))
            floor = cp.get(source, 0) + 1
            raises.extend((target, floor) for target in new_deps - old_deps)
            for target in old_deps - new_deps:
                if cp.get(target, 0) <= floor and target not in queued:
                    queued.add(target)
                    rescan.append(target)
        while rescan or raises:
            while raises:
                node, value = raises.pop()
                old = cp.get(node, 0)
                if old < value <= ceiling:
                    cp[node] = value
                    changed(node, old, value)
            if rescan:
                node = rescan.popleft()
                queued.discard(node)
                old = cp.get(node, 0)
                value = 1 + max((cp.get(p, 0) for p in self.effective_dependents(node)),
                                default=-1)
                cp[node] = value
                if value != old:
                    changed(node, old, value)

    def waves(self, nodes: Iterable[str], hard_blocked: set[str]) -> list[list[str]]:
        """Wave k: not-started sources whose dependencies all lie in earlier waves, assuming
        every build succeeds. Sources that can never start (a blocked cycle, an
        unresolvable or failed dependency) and everything downstream are left out."""
        todo = [n for n in nodes if self.not_started(n) is not None]
        members = set(todo)
        wave: dict[str, int] = {}
        excluded: set[str] = set()
        succ = self._wave_deps(members)
        for component in strongly_connected(todo, succ):
            for node in component:
                deps = succ(node)
                if node in hard_blocked or len(component) > 1 or any(d in excluded for d in deps):
                    excluded.add(node)
                    continue
                wave[node] = 1 + max((wave[d] for d in deps), default=-1)
        out: list[list[str]] = [[] for _ in range(max(wave.values(), default=-1) + 1)]
        for node, k in wave.items():
            out[k].append(node)
        return [sorted(w) for w in out]

    def _wave_deps(self, members: set[str]) -> Callable[[str], list[str]]:
        def deps(node: str) -> list[str]:
            return [d for d in self.effective_deps(node) if d in members]
        return deps
