"""What real Serpent recipes carry must not stop the noop backend: git upstreams (it fetches
nothing) and versions with ``-`` (``3.0.0-rc.3``), both seen in the corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.avalanche.build import run_build
from daemon.avalanche.errors import RecipeError
from daemon.avalanche.noop import strip_jsonc
from daemon.avalanche.packaging import check_archive
from daemon.avalanche.recipe import parse_recipe
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


def test_parsing_without_sources_skips_upstreams() -> None:
    doc = {"name": "x", "version": "1", "release": 1,
           "upstreams": [{"git|https://x/y.git": "abc"}]}
    assert parse_recipe(doc, sources=False).upstreams == ()
    with pytest.raises(RecipeError, match="git upstream"):
        parse_recipe(doc)


@pytest.mark.parametrize(("text", "expected"), [
    ('{"a": "x\\"//y"} // c', '{"a": "x\\"//y"} '),
    ('{"p": "/usr/lib/*.so"} /* c\n d */ [1]', '{"p": "/usr/lib/*.so"}  [1]'),
    ('[1] /* unterminated', '[1] '),
    ('"unterminated // still a string', '"unterminated // still a string'),
    ('/** header */\n{"k": "v\\\\"} // t\n', '\n{"k": "v\\\\"} \n'),
])
def test_strip_jsonc_edges(text: str, expected: str) -> None:
    assert strip_jsonc(text) == expected
