"""What real Serpent recipes carry must not stop the noop backend: git upstreams (it fetches
nothing) and versions with ``-`` (``3.0.0-rc.3``), both seen in the corpus."""

from __future__ import annotations

from pathlib import Path

from daemon.avalanche.build import run_build
from daemon.avalanche.packaging import check_archive
from events.payloads import Outcome
from tests.unit.avalanche.support import add_recipe, config, make_repo, task_for

STONE = """\
name        : gitsrc
version     : 3.0.0-rc.3
release     : 4
summary     : from git
upstreams   :
    - git|https://example.invalid/gitsrc.git : v3.0.0-rc.3
install     : |
    mkdir -p $installdir/usr/share/gitsrc
"""


def test_noop_builds_a_recipe_with_a_git_upstream_and_a_dashed_version(tmp_path: Path) -> None:
    repo, _ = make_repo(tmp_path / "recipes")
    commit = add_recipe(repo, "gitsrc", STONE)
    result = run_build(task_for(repo, commit, "gitsrc", release=4),
                       config(tmp_path / "b", backend="noop"))
    assert result.outcome is Outcome.SUCCESS, result.reason
    (artefact,) = result.artefacts
    assert artefact.filename == "gitsrc-3.0.0-rc.3-4-1-x86_64.tar.zst"
    manifest = check_archive(artefact.path)
    assert (manifest.version, manifest.release) == ("3.0.0-rc.3", 4)


def test_the_script_backend_still_refuses_a_git_upstream(tmp_path: Path) -> None:
    repo, _ = make_repo(tmp_path / "recipes")
    commit = add_recipe(repo, "gitsrc", STONE)
    result = run_build(task_for(repo, commit, "gitsrc", release=4),
                       config(tmp_path / "b", backend="script"))
    assert result.outcome is Outcome.FAILED
    assert "git upstream" in (result.reason or "")
