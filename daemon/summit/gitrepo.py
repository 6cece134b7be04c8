"""Recipe repositories through pygit2: a bare mirror, fetch, branch heads, trees and diffs.

Everything here blocks (libgit2 does file and network I/O), so the service calls the
``a``-prefixed wrappers, which run the same functions in a worker thread via
:func:`asyncio.to_thread` and keep the event loop free. A commit that touches ten recipes is
read as ten recipes: :meth:`Mirror.read_delta` walks the tree diff, not the whole tree.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pygit2

from daemon.formats.manifest import Manifest, manifest_file
from daemon.formats.stone import STONE_FILE
from daemon.summit.planning.collector import collector_paused
from daemon.summit.planning.recipe import BrokenRecipe, PlannedRecipe
from daemon.summit.planning.tree import (
    RecipeDelta,
    RecipeEntry,
    RecipeTree,
    entry_of,
    read_manifest,
    read_recipe,
)
from events.errors import CairnError

_MIRROR_REFSPEC = "+refs/heads/*:refs/heads/*"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")
#: How many parsed files a mirror keeps by blob id: a distribution's tree of a few thousand
#: recipes, bounded so that a 50,000-recipe tree does not keep a second copy alive.
_PARSED_KEPT = 8_192


class GitError(CairnError):
    """A repository could not be opened, fetched or read, or a revision does not exist."""


@dataclass(frozen=True, slots=True)
class RepoConfig:
    """A configured recipe repository: where it is, which branch, for which arches."""

    name: str
    url: str
    branch: str = "main"
    arches: tuple[str, ...] = ("x86_64",)
    extra: dict[str, str] = field(default_factory=dict, compare=False)
    #: The build environment (sha256 digest) configured for its builds; ``None``: none.
    #: Only the first one summit sees is used: after that the repository's environment is
    #: changed by an operator (``cairn recipes environment``), which re-plans.
    environment: str | None = None


class Mirror:
    """A bare mirror of one recipe repository (or any local repository, opened as is)."""

    def __init__(self, repo: Any, config: RepoConfig) -> None:
        self._repo = repo
        self.config = config
        # What a file parsed to, by (blob id, path[, arch]): a blob is immutable, so two trees
        # that share it (a commit touches few recipes; a release bump no manifest) parse it
        # once. Cleared whole when full; results are immutable and may be shared.
        self._recipes: dict[tuple[Any, str], PlannedRecipe | BrokenRecipe] = {}
        self._manifests: dict[tuple[Any, str, str], Manifest | BrokenRecipe] = {}

    # -- opening -----------------------------------------------------------------------
    @classmethod
    def open(cls, config: RepoConfig, root: Path) -> Mirror:
        """Open (or create) the bare mirror of ``config`` under ``root``; does not fetch."""
        if not _SAFE_NAME.match(config.name):
            raise GitError(f"repository name {config.name!r} is not a safe directory name")
        path = root / f"{config.name}.git"
        try:
            if path.exists():
                repo = pygit2.Repository(str(path))
            else:
                root.mkdir(parents=True, exist_ok=True)
                repo = pygit2.init_repository(str(path), bare=True)
                repo.remotes.create("origin", config.url, _MIRROR_REFSPEC)
            if repo.remotes["origin"].url != config.url:
                repo.remotes.set_url("origin", config.url)
        except (pygit2.GitError, OSError, KeyError) as exc:
            raise GitError(f"cannot open the mirror of {config.name} at {path}: {exc}") from exc
        return cls(repo, config)

    @classmethod
    def local(cls, path: Path | str, config: RepoConfig | None = None) -> Mirror:
        """Use an existing repository (bare or with a work tree) without mirroring it."""
        found = pygit2.discover_repository(str(path))
        if found is None:
            raise GitError(f"{path} is not a git repository")
        repo = pygit2.Repository(found)
        return cls(repo, config or RepoConfig(name="local", url=str(path)))

    @classmethod
    def clone(cls, url: str, dest: Path, config: RepoConfig | None = None) -> Mirror:
        """A bare clone of ``url`` into ``dest`` (for ``cairn plan`` on a URL)."""
        try:
            repo = pygit2.clone_repository(url, str(dest), bare=True)
        except (pygit2.GitError, ValueError) as exc:
            raise GitError(f"cannot clone {url}: {exc}") from exc
        return cls(repo, config or RepoConfig(name="remote", url=url))

    # -- refs --------------------------------------------------------------------------
    def fetch(self) -> None:
        """Bring every branch of the mirror up to date with the origin."""
        try:
            origin = self._repo.remotes["origin"]
            origin.fetch([_MIRROR_REFSPEC], prune=pygit2.enums.FetchPrune.PRUNE)
        except (pygit2.GitError, KeyError) as exc:
            where = f"{self.config.name} from {self.config.url}"
            raise GitError(f"cannot fetch {where}: {exc}") from exc

    def head(self, branch: str | None = None) -> str:
        """The commit id the branch points at (the configured branch by default)."""
        name = branch or self.config.branch
        for ref in (f"refs/heads/{name}", f"refs/remotes/origin/{name}"):
            if ref in self._repo.references:
                return str(self._repo.references[ref].resolve().target)
        raise GitError(f"{self.config.name} has no branch {name!r}")

    def resolve(self, rev: str) -> str:
        """Any revision (``HEAD~1``, a branch, a tag, an id) to a commit id."""
        try:
            obj = self._repo.revparse_single(rev)
            commit = obj.peel(pygit2.Commit)
        except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError) as exc:
            raise GitError(f"{self.config.name} has no revision {rev!r}") from exc
        return str(commit.id)

    # -- reading -----------------------------------------------------------------------
    def read_tree(self, commit: str, arch: str) -> RecipeTree:
        """Every recipe directory of ``commit`` (first sight of a repository), with the
        collector paused (:mod:`~daemon.summit.planning.collector`: a whole tree's recipes
        are hundreds of thousands of new containers)."""
        root = self._commit(commit).tree
        with collector_paused():
            entries = {path: self._entry(tree, path, arch)
                       for path, tree in _recipe_dirs(root, "")}
        return RecipeTree(commit=commit, entries=entries)

    def read_delta(self, old: str, new: str, arch: str) -> RecipeDelta:
        """Only the recipe directories a diff between two commits touches."""
        old_tree, new_tree = self._commit(old).tree, self._commit(new).tree
        if STONE_FILE in old_tree or STONE_FILE in new_tree:  # a one-recipe repository
            dirs = {""} if old_tree.id != new_tree.id else set()
        else:
            dirs = _changed_recipe_dirs(old_tree, new_tree, "")
        changed_entries: dict[str, RecipeEntry] = {}
        deleted: list[str] = []
        for path in sorted(dirs):
            tree = _subtree(new_tree, path)
            if tree is not None and STONE_FILE in tree:
                changed_entries[path] = self._entry(tree, path, arch)
            else:
                deleted.append(path)
        return RecipeDelta(old, new, changed_entries, tuple(deleted))

    def _entry(self, tree: Any, path: str, arch: str) -> RecipeEntry:
        name = manifest_file(arch)
        return self._read(path, arch, tree[STONE_FILE].id,
                          tree[name].id if name in tree else None)

    def _read(self, path: str, arch: str, stone_id: Any, manifest_id: Any) -> RecipeEntry:
        recipe = self._recipes.get((stone_id, path))
        if recipe is None:
            recipe = _kept(self._recipes, (stone_id, path),
                           read_recipe(path, self._blob(stone_id)))
        if manifest_id is None:
            return entry_of(path, recipe, None)
        manifest = self._manifests.get((manifest_id, path, arch))
        if manifest is None:
            manifest = _kept(self._manifests, (manifest_id, path, arch),
                             read_manifest(path, self._blob(manifest_id), arch))
        return entry_of(path, recipe, manifest)

    def _blob(self, oid: Any) -> bytes:
        _kind, data = self._repo.odb.read(oid)
        return bytes(data)

    def _commit(self, commit: str) -> Any:
        try:
            return self._repo[commit].peel(pygit2.Commit)
        except (KeyError, ValueError, pygit2.GitError) as exc:
            raise GitError(f"{self.config.name} has no commit {commit}") from exc

    # -- async wrappers (the service's API) ---------------------------------------------
    async def afetch(self) -> None:
        await asyncio.to_thread(self.fetch)

    async def ahead(self, branch: str | None = None) -> str:
        return await asyncio.to_thread(self.head, branch)

    async def aread_tree(self, commit: str, arch: str) -> RecipeTree:
        return await asyncio.to_thread(self.read_tree, commit, arch)

    async def aread_delta(self, old: str, new: str, arch: str) -> RecipeDelta:
        return await asyncio.to_thread(self.read_delta, old, new, arch)


def _kept(cache: dict[Any, Any], key: Any, value: Any) -> Any:
    if len(cache) >= _PARSED_KEPT:
        cache.clear()
    cache[key] = value
    return value


def _recipe_dirs(tree: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    """Depth-first walk yielding directories that hold a ``stone.yaml``; not below them."""
    stack = [(prefix, tree)]
    while stack:
        path, node = stack.pop()
        if STONE_FILE in node:
            yield path, node
            continue
        for entry in node:
            if entry.type_str == "tree":
                stack.append((f"{path}/{entry.name}" if path else entry.name, entry))


def _subtree(tree: Any, path: str) -> Any:
    if not path:
        return tree
    try:
        obj = tree[path]
    except KeyError:
        return None
    return obj if obj.type_str == "tree" else None


def _changed_recipe_dirs(old: Any, new: Any, prefix: str) -> set[str]:
    """Recipe directories that differ between two trees, descending only into subtrees
    whose ids differ (a ten-recipe commit in a 50,000-recipe tree reads a few dozen trees;
    libgit2's full diff took several times longer). Files outside any recipe directory are
    not recipes' business and are passed over."""
    before = {entry.name: entry for entry in old} if old is not None else {}
    after = {entry.name: entry for entry in new} if new is not None else {}
    found: set[str] = set()
    for name in before.keys() | after.keys():
        was, now = before.get(name), after.get(name)
        if was is not None and now is not None and was.id == now.id:
            continue
        was_tree = was if was is not None and was.type_str == "tree" else None
        now_tree = now if now is not None and now.type_str == "tree" else None
        if was_tree is None and now_tree is None:
            continue
        path = f"{prefix}/{name}" if prefix else name
        if any(t is not None and STONE_FILE in t for t in (was_tree, now_tree)):
            found.add(path)
        else:
            found |= _changed_recipe_dirs(was_tree, now_tree, path)
    return found
