"""What summit keeps of a recipe, and the record of one it could not read.

The recipe is read by the one reader of ``stone.yaml`` (:mod:`daemon.formats.stone`); summit
keeps, per source, only what planning uses (a tree of 50,000 recipes stays small):
:class:`PlannedRecipe`. A recipe directory whose files cannot be read becomes a
:class:`BrokenRecipe`: the tree goes on without it, and the problem is shown with its file and
line.
"""

from __future__ import annotations

from dataclasses import dataclass
from sys import intern

from daemon.formats.stone import STONE_FILE, Recipe


@dataclass(frozen=True, slots=True)
class BrokenRecipe:
    """A recipe directory whose files could not be parsed: summit plans nothing for it."""

    path: str
    file: str
    line: int
    message: str

    def to_json(self) -> dict[str, object]:
        return {"path": self.path, "file": self.file, "line": self.line, "message": self.message}


@dataclass(frozen=True, slots=True)
class PlannedRecipe:
    """A recipe as planning sees it; ``path`` is the recipe directory in the tree."""

    name: str
    version: str
    release: int
    path: str
    summary: str = ""
    build_deps: tuple[str, ...] = ()
    architectures: tuple[str, ...] = ()

    @classmethod
    def of(cls, recipe: Recipe, path: str) -> PlannedRecipe:
        # Names are interned: a library's name is in thousands of recipes' dependencies,
        # and a 50,000-recipe tree kept one copy of it per recipe.
        return cls(name=intern(recipe.name), version=intern(recipe.version),
                   release=recipe.release, path=path, summary=recipe.summary,
                   build_deps=tuple(intern(d) for d in recipe.build_deps),
                   architectures=recipe.architectures)  # fmt: skip

    @property
    def file(self) -> str:
        return recipe_file(self.path)

    def builds_for(self, arch: str) -> bool:
        """Whether the recipe builds on ``arch`` (no ``architectures`` key: everywhere)."""
        if not self.architectures:
            return True
        return arch in self.architectures or "native" in self.architectures


def recipe_file(path: str, name: str = STONE_FILE) -> str:
    """The path in the tree of a file of the recipe directory ``path``."""
    return f"{path}/{name}" if path else name
