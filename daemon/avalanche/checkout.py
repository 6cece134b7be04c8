"""The recipe at the task's commit, from a cached bare mirror of its repository.

One bare mirror per repository URL (or local path) lives under ``cache/git/``; a build fetches
only when the commit is missing, so a builder does one network round-trip per new commit,
not one clone per build. Exporting writes just the recipe's directory (stone.yaml, its
manifests and the files beside it) into the build's work tree. A link in the recipe that
leads out of the recipe's directory, followed all the way, is refused: the builder reads
the recipe's files as its own user, before any sandbox.

The functions block (libgit2 does I/O); call them from a thread. Builders of one host may
share the mirrors (``AvalancheConfig.mirror_cache``): a file lock per mirror keeps two of them
from fetching into it at once, and the one that waits finds the commit the other fetched.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import posixpath
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pygit2

from .errors import CheckoutError, RecipeError

_MODE_EXEC = 0o100755
_MODE_LINK = 0o120000


def mirror_path(cache_dir: Path, url: str) -> Path:
    """Where the bare mirror of ``url`` lives: one directory per URL, named by its hash."""
    key = hashlib.sha256(url.encode()).hexdigest()[:24]
    return cache_dir / "git" / f"{key}.git"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _open_mirror(path: Path, url: str) -> Any:
    if path.exists():
        return pygit2.Repository(str(path))
    repo = pygit2.init_repository(str(path), bare=True)
    repo.remotes.create("origin", url)
    return repo


def _lookup(repo: Any, commit: str) -> Any:
    try:
        obj = repo.get(commit)
    except ValueError:
        return None
    return obj.peel(pygit2.Commit) if obj is not None else None


def ensure_commit(cache_dir: Path, url: str, commit: str) -> Path:
    """Make sure the mirror of ``url`` holds ``commit``, fetching only if it is missing."""
    _mirror_with(cache_dir, url, commit)
    return mirror_path(cache_dir, url)


def _mirror_with(cache_dir: Path, url: str, commit: str) -> Any:
    """The mirror of ``url``, opened, once it holds ``commit``.

    A commit already there is read without the lock: git writes an object (a fetched pack
    and then its index) under a temporary name and renames it into place, so a reader never
    sees part of one, and a commit found is complete. Only a missing commit takes the lock,
    and looks again under it: of builders sharing the mirror that all miss the same new
    commit, the first fetches and the others find it there."""
    path = mirror_path(cache_dir, url)
    if path.exists():
        try:
            repo = pygit2.Repository(str(path))
        except pygit2.GitError:  # being created by another builder: wait for it below
            pass
        else:
            if _lookup(repo, commit) is not None:
                return repo
    with _locked(path):
        repo = _open_mirror(path, url)
        if _lookup(repo, commit) is not None:
            return repo
        try:
            repo.remotes["origin"].fetch(["+refs/*:refs/*"])
        except pygit2.GitError as exc:
            raise CheckoutError(f"cannot fetch recipe repository {url}: {exc}") from exc
        if _lookup(repo, commit) is None:
            raise CheckoutError(
                f"commit {commit} is not in recipe repository {url} after fetching it; "
                "was the branch force-pushed?"
            )
    return repo


def recipe_dir_of(recipe_path: str) -> str:
    """The recipe directory for a task's ``recipe_path`` (a directory or its stone.yaml)."""
    clean = posixpath.normpath(recipe_path.strip("/"))
    if clean.endswith((".yaml", ".yml")):
        clean = posixpath.dirname(clean)
    if clean.startswith("..") or posixpath.isabs(clean):
        raise RecipeError(f"recipe path {recipe_path!r} leaves the repository")
    return "" if clean == "." else clean


def export_recipe(cache_dir: Path, url: str, commit: str, recipe_path: str, dest: Path) -> Path:
    """Write the recipe directory at ``commit`` into ``dest``; return the stone.yaml path."""
    repo = _mirror_with(cache_dir, url, commit)
    tree = _lookup(repo, commit).tree
    sub = recipe_dir_of(recipe_path)
    if sub:
        try:
            tree = repo[(tree / sub).id]
        except KeyError as exc:
            raise RecipeError(f"{sub} does not exist at commit {commit} of {url}") from exc
        if not isinstance(tree, pygit2.Tree):
            raise RecipeError(f"{sub} at commit {commit} of {url} is not a directory")
    dest.mkdir(parents=True, exist_ok=True)
    try:
        _write_tree(repo, tree, dest)
    except UnicodeDecodeError as exc:
        raise RecipeError(f"{sub or 'the recipe'} at commit {commit} has a file name or link "
                          f"that is not UTF-8 ({exc.reason})") from None  # fmt: skip
    _check_links(dest)
    stone = dest / "stone.yaml"
    if not stone.is_file():
        raise RecipeError(f"{sub or 'the repository root'} at commit {commit} has no stone.yaml")
    return stone


def _write_tree(repo: Any, tree: Any, dest: Path) -> None:
    for entry in tree:
        name = entry.name
        if name in ("", ".", "..") or "/" in name:
            raise RecipeError(f"unsafe name {name!r} in recipe tree")
        target = dest / name
        if entry.type_str == "tree":
            target.mkdir(exist_ok=True)
            _write_tree(repo, repo[entry.id], target)
        elif entry.type_str == "blob" and entry.filemode == _MODE_LINK:
            link = repo[entry.id].data.decode()
            if posixpath.isabs(link) or posixpath.normpath(link).startswith(".."):
                raise RecipeError(f"symlink {name} -> {link} in recipe tree leaves the recipe")
            target.symlink_to(link)
        elif entry.type_str == "blob":
            target.write_bytes(repo[entry.id].data)
            target.chmod(0o755 if entry.filemode == _MODE_EXEC else 0o644)
        # Submodules (type "commit") are not part of a recipe: skipped.



def _check_links(dest: Path) -> None:
    """Refuse a recipe whose links, followed all the way, lead out of it (``a -> .`` then
    ``b -> a/..`` passes a check of each link alone, but ``b`` is the parent directory)."""
    inside = dest.resolve()
    for dirpath, dirnames, filenames in os.walk(dest):
        for name in dirnames + filenames:
            link = Path(dirpath, name)
            if not link.is_symlink():
                continue
            try:
                target = link.resolve(strict=False)
            except (OSError, RuntimeError) as exc:
                raise RecipeError(f"symlink {link.relative_to(dest)} in the recipe cannot be "
                                  f"followed: {exc}") from None  # fmt: skip
            if target != inside and inside not in target.parents:
                raise RecipeError(f"symlink {link.relative_to(dest)} in the recipe leads out of "
                                  "the recipe's directory")  # fmt: skip
