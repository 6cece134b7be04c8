"""The recipe at its commit, from a cached mirror that fetches only what is missing."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pygit2
import pytest

from daemon.avalanche.checkout import ensure_commit, export_recipe, mirror_path
from daemon.avalanche.errors import CheckoutError, RecipeError
from tests.unit.avalanche.support import add_recipe, git, make_repo


def test_export_at_old_commit_then_fetch_new_one(tmp_path: Path) -> None:
    repo, first = make_repo(tmp_path / "recipes")
    cache = tmp_path / "cache"
    stone = export_recipe(cache, str(repo), first, "libgreet/stone.yaml", tmp_path / "a")
    assert (stone.parent / "src" / "greet.c").is_file()
    old = stone.read_text()
    second = add_recipe(repo, "libgreet", old.replace("release     : 1", "release     : 2"))
    assert mirror_path(cache, str(repo)).is_dir()
    stone2 = export_recipe(cache, str(repo), second, "libgreet", tmp_path / "b")
    assert "release     : 2" in stone2.read_text()
    again = export_recipe(cache, str(repo), first, "libgreet", tmp_path / "c")
    assert again.read_text() == old


def test_missing_commit_and_path_are_clear(tmp_path: Path) -> None:
    repo, head = make_repo(tmp_path / "recipes")
    with pytest.raises(CheckoutError, match="e" * 40):
        ensure_commit(tmp_path / "cache", str(repo), "e" * 40)
    with pytest.raises(RecipeError, match="nosuch"):
        export_recipe(tmp_path / "cache", str(repo), head, "nosuch/stone.yaml", tmp_path / "x")
    with pytest.raises(RecipeError, match="leaves the repository"):
        export_recipe(tmp_path / "cache", str(repo), head, "../x/stone.yaml", tmp_path / "y")


def test_executable_bit_is_kept(tmp_path: Path) -> None:
    repo, _ = make_repo(tmp_path / "recipes")
    script = repo / "libgreet" / "pkg" / "hook.sh"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "hook")
    commit = git(repo, "rev-parse", "HEAD")
    stone = export_recipe(tmp_path / "cache", str(repo), commit, "libgreet", tmp_path / "out")
    assert (stone.parent / "pkg" / "hook.sh").stat().st_mode & 0o111


def test_links_that_lead_out_only_when_followed_are_refused(tmp_path: Path) -> None:
    """Each link alone looks harmless (``a -> .``, ``b -> a/..``), but ``b`` is the directory
    above the recipe, and ``stone.yaml -> b/../../etc/passwd`` would be read by the builder."""
    repo, _ = make_repo(tmp_path / "recipes")
    recipe = repo / "chain"
    recipe.mkdir()
    (recipe / "a").symlink_to(".")
    (recipe / "b").symlink_to("a/..")
    (recipe / "stone.yaml").write_text("name: chain\nversion: 1\nrelease: 1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "chain")
    head = git(repo, "rev-parse", "HEAD")
    with pytest.raises(RecipeError, match="symlink b in the recipe leads out"):
        export_recipe(tmp_path / "cache", str(repo), head, "chain", tmp_path / "out")


def test_builders_sharing_a_mirror_fetch_a_new_commit_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Builders of one host share the recipe mirrors: of several that need the same new
    commit at once, one fetches it and the others find it there (a mass rebuild's bump
    commit was fetched once per builder)."""
    repo, first = make_repo(tmp_path / "recipes")
    shared = tmp_path / "shared"
    ensure_commit(shared, str(repo), first)
    stone = (repo / "libgreet" / "stone.yaml").read_text()
    second = add_recipe(repo, "libgreet", stone.replace("release     : 1", "release     : 2"))
    fetches: list[str] = []
    real_fetch = pygit2.remotes.Remote.fetch

    def counted(self: pygit2.remotes.Remote, *args: Any, **kwargs: Any) -> Any:
        fetches.append(self.url or "")
        return real_fetch(self, *args, **kwargs)

    monkeypatch.setattr(pygit2.remotes.Remote, "fetch", counted)
    with ThreadPoolExecutor(4) as pool:
        stones = list(pool.map(
            lambda n: export_recipe(shared, str(repo), second, "libgreet", tmp_path / f"b{n}"),
            range(4)))
    assert fetches == [str(repo)]
    assert all("release     : 2" in s.read_text() for s in stones)
    export_recipe(shared, str(repo), first, "libgreet", tmp_path / "old")
    assert len(fetches) == 1  # a commit already there is read without fetching
