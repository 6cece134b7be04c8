"""A recipe whose names are paths, or that is not UTF-8, or whose version is unsafe in a file
name, fails as the recipe's fault (``failed``, not a retried ``infrastructure``) and writes
nothing outside the builder's directories."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from daemon.avalanche.build import run_build
from events.payloads import Outcome
from tests.integration.test_avalanche_outcomes import DATA, _stone
from tests.unit.avalanche.support import add_recipe, config, git, make_repo, task_for

TREE = Path(__file__).resolve().parents[2]


def _archives(root: Path) -> list[Path]:
    return sorted(root.rglob("*.tar.zst"))


def test_a_sub_package_named_like_a_path_fails_and_writes_nothing(tmp_path: Path) -> None:
    stone = _stone("subpath", "true") + 'packages:\n    - "../../../x":\n        paths:\n' \
        '            - /usr/share\n'
    repo, _ = make_repo(tmp_path / "recipes")
    commit = add_recipe(repo, "subpath", stone, {"data.txt": DATA})
    result = run_build(task_for(repo, commit, "subpath"), config(tmp_path / "b"))
    assert result.outcome is Outcome.FAILED
    assert result.reason is not None and "'../../../x' is not a valid name" in result.reason
    assert _archives(tmp_path) == []


def test_a_recipe_that_is_not_utf8_is_the_recipes_fault(tmp_path: Path) -> None:
    repo, _ = make_repo(tmp_path / "recipes")
    (repo / "latin1").mkdir()
    (repo / "latin1" / "stone.yaml").write_bytes(
        _stone("latin1", "true").replace("test recipe", "caf\xe9").encode("latin-1"))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "latin-1")
    commit = git(repo, "rev-parse", "HEAD")
    result = run_build(task_for(repo, commit, "latin1"), config(tmp_path / "b"))
    assert result.outcome is Outcome.FAILED
    assert result.reason is not None and "is not UTF-8 text" in result.reason


def test_an_unsafe_version_is_the_recipes_fault(tmp_path: Path) -> None:
    stone = _stone("badver", "true").replace("version: 1.0.0", "version: 1.0/../../x")
    repo, _ = make_repo(tmp_path / "recipes")
    commit = add_recipe(repo, "badver", stone, {"data.txt": DATA})
    result = run_build(task_for(repo, commit, "badver"), config(tmp_path / "b"))
    assert result.outcome is Outcome.FAILED
    assert result.reason is not None and "version '1.0/../../x'" in result.reason
    assert _archives(tmp_path) == []


def test_noop_refuses_a_manifest_package_named_like_a_path(tmp_path: Path) -> None:
    manifest = '{"packages": {"evil": {"name": "../../../evil", "provides": []}}}'
    repo, _ = make_repo(tmp_path / "recipes")
    commit = add_recipe(repo, "noopname", _stone("noopname", "true"),
                        {"data.txt": DATA, "manifest.x86_64.jsonc": manifest.encode()})
    result = run_build(task_for(repo, commit, "noopname"), config(tmp_path / "b",
                                                                  backend="noop"))
    assert result.outcome is Outcome.FAILED
    assert result.reason is not None and "'../../../evil' is not a valid name" in result.reason
    assert _archives(tmp_path) == []


def test_build_recipe_refuses_a_recipe_named_like_a_path(tmp_path: Path) -> None:
    repo, _ = make_repo(tmp_path / "recipes")
    stone = _stone("pathname", "true").replace("name: pathname", "name: ../../../x")
    add_recipe(repo, "pathname", stone, {"data.txt": DATA})
    root = tmp_path / "deep" / "er" / "root"
    done = subprocess.run(
        [sys.executable, "-m", "daemon.cli", "build-recipe", str(repo), "pathname", "--root",
         str(root)], cwd=TREE, env={**os.environ, "PYTHONPATH": str(TREE)},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "the recipe's name '../../../x' is not a valid name" in done.stderr
    assert _archives(tmp_path) == []
