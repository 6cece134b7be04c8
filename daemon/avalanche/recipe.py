"""A builder reads a recipe with the one reader of ``stone.yaml`` (:mod:`daemon.formats.stone`).

What is wrong with a recipe is the recipe's fault: the reader's error becomes a
:class:`~.errors.RecipeError` (outcome ``failed``) naming the file and line. The file is read
at most to the reader's size cap, so a huge file costs nothing before it is refused.
"""

from __future__ import annotations

from pathlib import Path

from daemon.formats import stone

from .errors import RecipeError

Recipe = stone.Recipe


def load_recipe(path: Path, *, origin: str | None = None) -> Recipe:
    """Read ``stone.yaml`` at ``path``; errors name ``origin`` (default: the path)."""
    where = origin or str(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(stone.MAX_RECIPE_BYTES + 1)
    except OSError as exc:
        raise RecipeError(f"cannot read recipe {where}: {exc}") from exc
    return parse_recipe(data, where)


def parse_recipe(data: bytes, origin: str = stone.STONE_FILE) -> Recipe:
    """Read a recipe's bytes; raise :class:`~.errors.RecipeError`."""
    try:
        return stone.parse_stone(data, origin)
    except stone.RecipeError as exc:
        raise RecipeError(str(exc)) from None
