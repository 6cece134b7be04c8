"""A recipe tree as summit sees it at one commit: recipe directories, parsed or broken.

Pure data: :mod:`daemon.summit.gitrepo` fills these from git objects, tests and benchmarks
from plain bytes, read by the one reader of each format (:mod:`daemon.formats`). A recipe
directory is any directory holding a ``stone.yaml``; its ``manifest.<arch>.jsonc`` (optional)
says what it provides.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from sys import intern

from daemon.formats.manifest import Manifest, manifest_file, parse_manifest
from daemon.formats.stone import RecipeError, parse_stone
from daemon.summit.planning.recipe import BrokenRecipe, PlannedRecipe, recipe_file


@dataclass(frozen=True, slots=True)
class RecipeEntry:
    """One recipe directory: the recipe (or why it is broken) and its providers."""

    path: str
    recipe: PlannedRecipe | None
    manifest: Manifest | None = None
    problems: tuple[BrokenRecipe, ...] = ()

    @property
    def package_names(self) -> frozenset[str]:
        """The packages the recipe declares: its own name and its manifest's packages."""
        if self.recipe is None:
            return frozenset()
        own = frozenset((self.recipe.name,))
        if self.manifest is None:
            return own
        return own | frozenset(intern(p.name) for p in self.manifest.packages)

    @property
    def providers(self) -> frozenset[str]:
        """The recipe's own name, plus every package name and provide of its manifest."""
        if self.recipe is None:
            return frozenset()
        own = frozenset((self.recipe.name,))
        if self.manifest is None:
            return own
        return own | frozenset(map(intern, self.manifest.providers()))


@dataclass(frozen=True, slots=True)
class RecipeTree:
    """Every recipe directory of a commit, by path."""

    commit: str
    entries: Mapping[str, RecipeEntry]

    @property
    def problems(self) -> tuple[BrokenRecipe, ...]:
        return tuple(p for e in self.entries.values() for p in e.problems)


@dataclass(frozen=True, slots=True)
class RecipeDelta:
    """What changed between two commits: changed/added recipe directories and deleted ones."""

    old_commit: str
    new_commit: str
    changed: Mapping[str, RecipeEntry] = field(default_factory=dict)
    deleted: tuple[str, ...] = ()


def load_entry(
    path: str, stone: bytes, manifest: bytes | None, arch: str, *, keep_files: bool = False
) -> RecipeEntry:
    """Read one recipe directory's files; a broken file is a problem, not an exception.

    A broken manifest leaves the recipe plannable with only its own name as provider.
    """
    read = None if manifest is None else read_manifest(path, manifest, arch, keep_files=keep_files)
    return entry_of(path, read_recipe(path, stone), read)


def read_recipe(path: str, stone: bytes) -> PlannedRecipe | BrokenRecipe:
    """The recipe of ``path``'s ``stone.yaml``, or why it is broken."""
    try:
        return PlannedRecipe.of(parse_stone(stone, recipe_file(path)), path)
    except RecipeError as exc:
        return _broken(path, exc)


def read_manifest(
    path: str, manifest: bytes, arch: str, *, keep_files: bool = False
) -> Manifest | BrokenRecipe:
    """The manifest of ``path`` for ``arch``, or why it is broken."""
    try:
        return parse_manifest(manifest, recipe_file(path, manifest_file(arch)),
                              keep_files=keep_files)
    except RecipeError as exc:
        return _broken(path, exc)


def entry_of(
    path: str, recipe: PlannedRecipe | BrokenRecipe, manifest: Manifest | BrokenRecipe | None
) -> RecipeEntry:
    """One directory from what :func:`read_recipe` and :func:`read_manifest` made of it (a
    reader may keep those by file content and hand the same result to several trees)."""
    if isinstance(recipe, BrokenRecipe):
        return RecipeEntry(path=path, recipe=None, problems=(recipe,))
    if isinstance(manifest, BrokenRecipe):
        return RecipeEntry(path=path, recipe=recipe, problems=(manifest,))
    return RecipeEntry(path=path, recipe=recipe, manifest=manifest)


def _broken(path: str, exc: RecipeError) -> BrokenRecipe:
    return BrokenRecipe(path=path, file=exc.file, line=exc.line, message=exc.message)
