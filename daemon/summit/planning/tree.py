"""A recipe tree as summit sees it at one commit: recipe directories, parsed or broken.

Pure data: :mod:`daemon.summit.gitrepo` fills these from git objects, tests and benchmarks
from plain bytes. A recipe directory is any directory holding a ``stone.yaml``; its
``manifest.<arch>.jsonc`` (optional) says what it provides.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from daemon.summit.planning.manifest import Manifest, manifest_file, parse_manifest
from daemon.summit.planning.recipe import BrokenRecipe, Recipe, RecipeError, parse_stone


@dataclass(frozen=True, slots=True)
class RecipeEntry:
    """One recipe directory: the recipe (or why it is broken) and its providers."""

    path: str
    recipe: Recipe | None
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
        return own | frozenset(p.name for p in self.manifest.packages)

    @property
    def providers(self) -> frozenset[str]:
        """The recipe's own name, plus every package name and provide of its manifest."""
        if self.recipe is None:
            return frozenset()
        own = frozenset((self.recipe.name,))
        return own | self.manifest.providers() if self.manifest is not None else own


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
    """Parse one recipe directory's files; a broken file is a problem, not an exception.

    A broken manifest leaves the recipe plannable with only its own name as provider.
    """
    try:
        recipe = parse_stone(stone, path)
    except RecipeError as exc:
        return RecipeEntry(path=path, recipe=None, problems=(exc.record(path),))
    if manifest is None:
        return RecipeEntry(path=path, recipe=recipe)
    file = f"{path}/{manifest_file(arch)}" if path else manifest_file(arch)
    try:
        parsed = parse_manifest(manifest, file, keep_files=keep_files)
    except RecipeError as exc:
        return RecipeEntry(path=path, recipe=recipe, problems=(exc.record(path),))
    return RecipeEntry(path=path, recipe=recipe, manifest=parsed)
