"""The dependency graph's indexes and algorithms, kept up to date instead of rebuilt.

:class:`RecipeGraph` indexes the recipes of one tree: which source provides a name (from the
manifests) and which sources build-depend on a name, so that a commit changing ten recipes
updates ten recipes' entries. :class:`PublishedIndex` is the same for what the target
repository has published. The algorithms (strongly connected components, cycle breaking,
longest chains) are iterative: a 50,000-node graph never meets Python's recursion limit.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial

from daemon.formats.manifest import normalise
from daemon.summit.planning.recipe import BrokenRecipe, PlannedRecipe
from daemon.summit.planning.tree import RecipeEntry

Succ = Callable[[str], Iterable[str]]


@dataclass(slots=True)
class RecipeGraph:
    """Recipes by source, with the provider index and the users (reverse) index."""

    recipes: dict[str, PlannedRecipe] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)
    by_path: dict[str, str] = field(default_factory=dict)
    #: Kept as tuples (a frozenset per recipe weighed four times as much).
    provides: dict[str, tuple[str, ...]] = field(default_factory=dict)
    providers: dict[str, Holders] = field(default_factory=dict)
    users: dict[str, Holders] = field(default_factory=dict)
    #: The package names each source declares (its name, its manifest's packages), and
    #: the reverse: which sources declare a package name.
    packages: dict[str, tuple[str, ...]] = field(default_factory=dict)
    declared: dict[str, Holders] = field(default_factory=dict)

    def put(self, entry: RecipeEntry) -> tuple[set[str], BrokenRecipe | None]:
        """Add or replace the recipe at ``entry.path``.

        Returns the names whose set of providers changed (their users must be re-resolved)
        and a problem when the entry cannot be used (another path has the same source).
        """
        recipe = entry.recipe
        if recipe is None:
            return set(), None
        owner = self.paths.get(recipe.name)
        if owner is not None and owner != recipe.path:
            return set(), BrokenRecipe(
                recipe.path, recipe.file, 1,
                f"source {recipe.name!r} is already defined by {owner}/stone.yaml",
            )
        changed = self._drop_path(recipe.path, keep=recipe.name)
        old = frozenset(self.provides.get(recipe.name, ()))
        new = entry.providers
        for name in old - new:
            discard_holder(self.providers, name, recipe.name)
        for name in new - old:
            add_holder(self.providers, name, recipe.name)
        changed |= old ^ new
        self._set_packages(recipe.name, entry.package_names)
        self._set_users(recipe.name, self.recipes.get(recipe.name), recipe)
        self.recipes[recipe.name] = recipe
        self.paths[recipe.name] = recipe.path
        self.by_path[recipe.path] = recipe.name
        self.provides[recipe.name] = tuple(new)
        return changed, None

    def remove_path(self, path: str) -> tuple[str | None, set[str]]:
        """Remove whatever recipe lives at ``path``: (its source, names that lost a provider)."""
        source = self.by_path.get(path)
        return source, self._drop_path(path, keep=None)

    def _drop_path(self, path: str, keep: str | None) -> set[str]:
        """Drop the recipe at ``path`` unless it is ``keep`` (same source, being replaced)."""
        source = self.by_path.get(path)
        if source is None or source == keep:
            return set()
        lost = set(self.provides.pop(source, ()))
        for name in lost:
            discard_holder(self.providers, name, source)
        self._set_packages(source, frozenset())
        self._set_users(source, self.recipes.pop(source, None), None)
        self.paths.pop(source, None)
        del self.by_path[path]
        return lost

    def _set_packages(self, source: str, names: frozenset[str]) -> None:
        old = frozenset(self.packages.pop(source, ()))
        for name in old - names:
            discard_holder(self.declared, name, source)
        for name in names - old:
            add_holder(self.declared, name, source)
        if names:
            self.packages[source] = tuple(names)

    def declared_by(self, name: str) -> Collection[str]:
        """The sources whose recipe or manifest declares the package ``name``."""
        return holders_of(self.declared, name)

    def _set_users(self, source: str, old: PlannedRecipe | None, new: PlannedRecipe | None) -> None:
        before = set(old.build_deps) if old else set()
        after = set(new.build_deps) if new else set()
        for name in before - after:
            discard_holder(self.users, name, source)
        for name in after - before:
            add_holder(self.users, name, source)

    def recipe_providers(self, name: str) -> Collection[str]:
        return holders_of(self.providers, name)

    def users_of(self, names: Iterable[str]) -> set[str]:
        """Sources that build-depend on any of ``names``."""
        out: set[str] = set()
        for name in names:
            out.update(holders_of(self.users, name))
        return out

    def dependents(self, source: str) -> set[str]:
        """Sources that build-depend on something ``source`` provides."""
        return self.users_of(self.provides.get(source, ()))


@dataclass(slots=True)
class PublishedIndex:
    """What the target repository has published: release per source, providers by name."""

    releases: dict[str, int] = field(default_factory=dict)
    providers: dict[str, Holders] = field(default_factory=dict)

    def add(self, source: str, release: int, names: Iterable[str]) -> set[str]:
        """Record a publication; returns the names that had no published provider before."""
        if release >= self.releases.get(source, -1):
            self.releases[source] = release
        new: set[str] = set()
        for raw in names:
            name = normalise(raw)
            if name not in self.providers:
                new.add(name)
            add_holder(self.providers, name, source)
        return new

    def provides(self, name: str) -> bool:
        return name in self.providers

    def providers_of(self, name: str) -> Collection[str]:
        return holders_of(self.providers, name)


#: The sources an index holds under one name: most names have one, kept as the text alone
#: (a set per name was most of a 50,000-recipe graph's memory).
Holders = str | set[str]


def holders_of(index: Mapping[str, Holders], name: str) -> Collection[str]:
    found = index.get(name)
    if found is None:
        return ()
    return (found,) if isinstance(found, str) else found


def copy_holders(index: Mapping[str, Holders]) -> dict[str, Holders]:
    return {name: h if isinstance(h, str) else set(h) for name, h in index.items()}


def add_holder(index: dict[str, Holders], name: str, source: str) -> None:
    found = index.get(name)
    if found is None:
        index[name] = source
    elif isinstance(found, str):
        if found != source:
            index[name] = {found, source}
    else:
        found.add(source)


def discard_holder(index: dict[str, Holders], name: str, source: str) -> None:
    found = index.get(name)
    if found is None:
        return
    if isinstance(found, str):
        if found == source:
            del index[name]
        return
    found.discard(source)
    if len(found) == 1:
        index[name] = next(iter(found))
    elif not found:
        del index[name]


def strongly_connected(nodes: Iterable[str], succ: Succ) -> list[list[str]]:
    """Tarjan's algorithm without recursion; components come out dependencies-first."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(succ(root)))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(succ(child))))
                    advanced = True
                    break
                if child in on_stack and index[child] < low[node]:
                    low[node] = index[child]
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                out.append(component)
    return out


def break_cycles(
    component: Collection[str], succ: Succ, breakable: Callable[[str, str], bool]
) -> tuple[set[tuple[str, str]], list[tuple[str, ...]]]:
    """Break a strongly connected block through already published members.

    Repeatedly picks the member with the most breakable in-edges from the block (ties by
    name), lets those dependents build against its published version (the edges are
    returned as broken), and splits what is left into blocks again. A block in which no
    edge can be broken is a real cycle: returned with its members, sorted.
    """
    broken: set[tuple[str, str]] = set()
    blocked: list[tuple[str, ...]] = []
    work: list[set[str]] = [set(component)]
    while work:
        block = work.pop()
        inner = {u: [v for v in succ(u) if v in block and (u, v) not in broken] for u in block}
        if len(block) == 1 and not any(inner.values()):
            continue
        counts: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for u, targets in inner.items():
            for v in targets:
                if breakable(u, v):
                    counts[v].append((u, v))
        if not counts:
            blocked.append(tuple(sorted(block)))
            continue
        target = min(counts, key=lambda v: (-len(counts[v]), v))
        broken.update(counts[target])
        for sub in strongly_connected(sorted(block), partial(_live, inner, broken)):
            work.append(set(sub))
    return broken, blocked


def _live(inner: Mapping[str, list[str]], broken: set[tuple[str, str]], u: str) -> list[str]:
    return [v for v in inner[u] if (u, v) not in broken]


def longest_chains(
    region: Collection[str], preds: Succ, succ: Succ, known: Mapping[str, int]
) -> dict[str, int]:
    """Longest chain of ``preds`` (dependents) after each node of ``region``, in an acyclic
    graph; nodes outside the region keep their ``known`` value. Kahn's order, no recursion.
    """
    inside = set(region)
    # Each node's predecessors once: core libraries have thousands of dependents, and
    # asking for them twice per node was most of an incremental plan's time.
    before = {n: preds(n) for n in inside}
    waiting = {n: sum(1 for p in before[n] if p in inside) for n in inside}
    queue = deque(n for n, count in waiting.items() if count == 0)
    result: dict[str, int] = {}
    while queue:
        node = queue.popleft()
        best = -1
        for p in before[node]:
            value = result[p] if p in inside else known.get(p, 0)
            if value > best:
                best = value
        result[node] = best + 1
        for s in succ(node):
            if s in inside:
                waiting[s] -= 1
                if waiting[s] == 0:
                    queue.append(s)
    return result
