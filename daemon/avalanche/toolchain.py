"""Which toolchain a build uses, decided from the recipe and what its build root has.

``toolchain: gnu`` builds with gcc. ``toolchain: llvm`` needs clang, clang++, ld.lld and
llvm-ar in the build's root; without them the build fails saying which are missing. A recipe
that names no toolchain gets boulder's default, llvm, where the root has it, and gcc where it
does not (a Debian build environment without clang): the build log says so.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from daemon.formats.macros.toolchain import REQUIRED
from daemon.formats.stone import Recipe, Toolchain

from .backend import BuildContext
from .errors import RecipeError


def find_tool(ctx: BuildContext, name: str) -> bool:
    """Whether ``name`` is an executable on the build's PATH, as its sandbox shows it."""
    for entry in ctx.env.get("PATH", "").split(":"):
        if not entry.startswith("/"):
            continue
        host = _host_path(ctx, Path(entry)) / name
        try:
            if host.is_file() and os.access(host, os.X_OK):
                return True
        except OSError:  # a directory the builder's user cannot search holds nothing usable
            continue
    return False


def _host_path(ctx: BuildContext, inside: Path) -> Path:
    seen_tree = ctx.sandbox.inside(ctx.tree.root)
    if inside == seen_tree or seen_tree in inside.parents:
        return ctx.tree.root / inside.relative_to(seen_tree)
    return ctx.sandbox.root / inside.relative_to("/")


def choose(recipe: Recipe, ctx: BuildContext,
           has: Callable[[str], bool] | None = None) -> str:  # fmt: skip
    """The toolchain to build with (see the module docstring); raises RecipeError."""
    present = has or (lambda tool: find_tool(ctx, tool))
    wanted = str(recipe.toolchain)
    missing = [tool for tool in REQUIRED[wanted] if not present(tool)]
    if not missing:
        ctx.log.line(f"toolchain: {wanted}")
        return wanted
    if wanted == Toolchain.LLVM and "toolchain" not in recipe.keys:
        ctx.log.line("toolchain: the recipe names none and boulder's default, llvm, is not in "
                     f"the build environment (missing {', '.join(missing)}): building with "
                     "gnu (gcc)")  # fmt: skip
        return str(Toolchain.GNU)
    if wanted == Toolchain.GNU:
        ctx.log.line(f"toolchain: gnu, but the build environment lacks {', '.join(missing)}")
        return wanted
    raise RecipeError(f"toolchain: {wanted} needs {', '.join(REQUIRED[wanted])} but the build "
                      f"environment has no {', '.join(missing)}: add them to it, or build "
                      "with toolchain: gnu")  # fmt: skip
