from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from daemon.summit.gitrepo import GitError, Mirror, RepoConfig
from tests.unit.summit.helpers import manifest, stone

ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
       "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org", "HOME": "/tmp"}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, env=ENV, check=True, capture_output=True,
                          text=True).stdout.strip()


def write(repo: Path, path: str, name: str, release: int, deps: tuple[str, ...] = ()) -> None:
    d = repo / path
    d.mkdir(parents=True, exist_ok=True)
    (d / "stone.yaml").write_bytes(stone(name, release, deps))
    (d / "manifest.x86_64.jsonc").write_bytes(manifest(name, [f"pkgconfig({name})"]))


@pytest.fixture
def upstream(tmp_path: Path) -> Path:
    repo = tmp_path / "up"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    for i in range(30):
        write(repo, f"{chr(97 + i % 26)}/pkg{i}", f"pkg{i}", 1)
    (repo / "a/pkg0/patches").mkdir()
    (repo / "a/pkg0/patches/fix.patch").write_text("--- a\n")
    (repo / "README.md").write_text("recipes\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "one")
    return repo


async def test_mirror_fetch_tree_and_delta(upstream: Path, tmp_path: Path) -> None:
    config = RepoConfig(name="recipes", url=str(upstream), branch="main")
    mirror = Mirror.open(config, tmp_path / "mirrors")
    await mirror.afetch()
    first = await mirror.ahead()
    assert first == git(upstream, "rev-parse", "HEAD")
    tree = await mirror.aread_tree(first, "x86_64")
    assert len(tree.entries) == 30 and tree.entries["a/pkg0"].recipe is not None
    assert tree.entries["b/pkg1"].providers == {"pkg1", "pkgconfig(pkg1)"}

    write(upstream, "b/pkg1", "pkg1", 2)
    (upstream / "a/pkg0/patches/fix.patch").write_text("--- b\n")
    git(upstream, "rm", "-rq", "c/pkg2")
    write(upstream, "new/sub/pkg99", "pkg99", 1)
    (upstream / "README.md").write_text("changed, not a recipe\n")
    git(upstream, "add", "-A")
    git(upstream, "commit", "-qm", "two")
    mirror = Mirror.open(config, tmp_path / "mirrors")  # reopened, like after a restart
    await mirror.afetch()
    second = await mirror.ahead()
    assert second != first
    delta = await mirror.aread_delta(first, second, "x86_64")
    assert set(delta.changed) == {"a/pkg0", "b/pkg1", "new/sub/pkg99"}
    assert delta.deleted == ("c/pkg2",)
    recipe = delta.changed["b/pkg1"].recipe
    assert recipe is not None and recipe.release == 2


def test_errors_are_cairn_errors(upstream: Path, tmp_path: Path) -> None:
    mirror = Mirror.local(upstream)
    with pytest.raises(GitError, match="no revision"):
        mirror.resolve("nope~3")
    with pytest.raises(GitError, match="no branch"):
        mirror.head("nope")
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(GitError, match="not a git repository"):
        Mirror.local(plain)
    assert mirror.resolve("HEAD") == git(upstream, "rev-parse", "HEAD")


def test_delta_of_a_one_recipe_repository(tmp_path: Path) -> None:
    repo = tmp_path / "solo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    write(repo, ".", "solo", 1)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "one")
    first = git(repo, "rev-parse", "HEAD")
    write(repo, ".", "solo", 2)
    git(repo, "commit", "-qam", "two")
    delta = Mirror.local(repo).read_delta(first, git(repo, "rev-parse", "HEAD"), "x86_64")
    assert list(delta.changed) == [""] and delta.changed[""].recipe is not None
    assert delta.changed[""].recipe.release == 2


def test_a_file_two_trees_share_is_read_once_and_a_changed_one_again(upstream: Path) -> None:
    mirror = Mirror.local(upstream)
    first = mirror.read_tree(mirror.head(), "x86_64")
    write(upstream, "b/pkg1", "pkg1", 2)
    (upstream / "b/pkg1/manifest.x86_64.jsonc").write_bytes(manifest("pkg1", ["binary(p)"]))
    (upstream / "a/pkg0/stone.yaml").write_bytes(stone("pkg0", 5))  # stone.yaml only
    git(upstream, "commit", "-qam", "two")
    second = mirror.read_tree(mirror.head(), "x86_64")
    # Unchanged files: the very objects parsed for the first tree.
    assert second.entries["c/pkg2"].recipe is first.entries["c/pkg2"].recipe
    assert second.entries["a/pkg0"].manifest is first.entries["a/pkg0"].manifest
    # Changed files: read again, and what they say now.
    pkg0, pkg1 = second.entries["a/pkg0"].recipe, second.entries["b/pkg1"].recipe
    assert pkg0 is not None and pkg0.release == 5
    assert pkg1 is not None and pkg1.release == 2
    assert second.entries["b/pkg1"].providers == {"pkg1", "binary(p)"}
