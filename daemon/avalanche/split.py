"""Which package each installed file goes to, and what each package provides and needs.

Split rule, first match wins:

1. a package the recipe declares under ``packages:`` whose ``paths`` match the file (a path
   is a prefix, ``/usr/share/icons`` takes everything under it, or a glob, ``/usr/lib/*.a``);
2. ``<name>-devel``: ``usr/include/``, ``usr/lib/pkgconfig/``, ``usr/share/pkgconfig/``,
   ``usr/lib/cmake/``, ``usr/share/aclocal/``, ``usr/lib/*.a`` and the unversioned
   ``usr/lib/*.so`` development symlinks;
3. the main package ``<name>``.

Each package also holds the directories above its files. Provides: ``name(x)`` and the
plain name, and what its files back by the rule in :mod:`daemon.provides` (vessel checks a
package's claims by the same rule): ``binary(x)``, ``sysbinary(x)``, ``pkgconfig(x)``,
``soname(lib(arch))`` (:func:`file_provides`, shared with build environments' manifests).
Depends: the recipe's ``rundeps`` (or the sub-package's), ``soname(...)`` of the ELF files'
DT_NEEDED that the package does not provide itself, and for ``-devel`` the main package.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from daemon.elf import read_elf
from daemon.package import MANIFEST_DIR, FileType
from daemon.provides import own_provides, path_provides

from .errors import PackagingError
from .recipe import Recipe

_DEVEL_DIRS = ("usr/include/", "usr/lib/pkgconfig/", "usr/share/pkgconfig/", "usr/lib/cmake/",
               "usr/share/aclocal/")  # fmt: skip


@dataclass(frozen=True)
class PackagePlan:
    """One package to write: its files (relative paths in the install tree) and metadata."""

    name: str
    summary: str
    paths: tuple[str, ...]
    depends: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()


def list_tree(root: Path) -> list[str]:
    """Every file and symlink under ``root`` as sorted relative paths (dirs are implied)."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            found.append(name if rel_dir == "." else f"{rel_dir}/{name}")
        if not filenames and not dirnames and rel_dir != ".":
            found.append(rel_dir + "/")  # an empty directory the recipe installed on purpose
    if any(p == MANIFEST_DIR.split("/")[0] or p.startswith(".cairn/") for p in found):
        raise PackagingError("the install tree has a .cairn directory; it is reserved")
    return sorted(found)


def _matches(path: str, pattern: str) -> bool:
    pattern = pattern.strip("/")
    clean = path.rstrip("/")
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatchcase(clean, pattern)
    return clean == pattern or clean.startswith(pattern + "/")


def is_devel(path: str, root: Path) -> bool:
    if path.startswith(_DEVEL_DIRS):
        return True
    parent, _, base = path.rpartition("/")
    if parent != "usr/lib":
        return False
    return base.endswith(".a") or (base.endswith(".so") and (root / path).is_symlink())


def assign(recipe: Recipe, paths: list[str], root: Path) -> dict[str, list[str]]:
    """Package name -> its paths, by the split rule in the module docstring."""
    result: dict[str, list[str]] = {}
    devel = f"{recipe.name}-devel"
    for path in paths:
        target = next(
            (p.name for p in recipe.packages
             if any(_matches(path, rule.path) for rule in p.paths)),
            None,
        )
        if target is None:
            target = devel if is_devel(path, root) else recipe.name
        result.setdefault(target, []).append(path)
    return result


def file_provides(paths: Iterable[str], root: Path) -> tuple[set[str], set[str]]:
    """What the files at ``paths`` (relative to ``root``) provide, and the sonames they need.

    Symlinks and other non-regular files are never opened (a root's absolute links point at
    the host until the root is mounted as ``/``)."""
    provides: set[str] = set()
    needed: set[str] = set()
    for path in paths:
        full = root / path
        st = full.lstat()
        kind = (FileType.SYMLINK if stat.S_ISLNK(st.st_mode) else
                FileType.FILE if stat.S_ISREG(st.st_mode) else FileType.DIR)
        provides |= path_provides(path.rstrip("/"), kind, stat.S_IMODE(st.st_mode))
        if kind is not FileType.FILE:
            continue
        info = read_elf(full)
        if info is None:
            continue
        if (soname := info.soname_provider()) is not None:
            provides.add(soname)
        needed.update(info.needed_providers())
    return provides, needed


def _provides_of(name: str, paths: list[str], root: Path) -> tuple[set[str], set[str]]:
    provides, needed = file_provides(paths, root)
    return provides | own_provides(name), needed


def plan_packages(recipe: Recipe, root: Path) -> list[PackagePlan]:
    """Split the install tree at ``root`` into package plans (empty packages are dropped)."""
    groups = assign(recipe, list_tree(root), root)
    declared = {p.name: p for p in recipe.packages}
    plans = []
    for name in sorted(groups):
        paths = groups[name]
        provides, needed = _provides_of(name, paths, root)
        sub = declared.get(name)
        depends = set(sub.rundeps if sub else recipe.rundeps if name == recipe.name else ())
        depends |= needed - provides
        if name == f"{recipe.name}-devel" and recipe.name in groups:
            depends.add(recipe.name)
        summary = (sub.summary if sub else "") or recipe.summary
        plans.append(PackagePlan(name, summary, tuple(paths), tuple(sorted(depends)),
                                 tuple(sorted(provides))))  # fmt: skip
    return plans
