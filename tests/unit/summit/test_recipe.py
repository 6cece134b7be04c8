"""Summit reads a recipe directory with the one reader of each format; whatever is wrong with
one recipe is that recipe's problem (file and line), and the rest of the tree is planned."""

from __future__ import annotations

import time

from daemon.summit.planning.graph import PublishedIndex
from daemon.summit.planning.planner import Planner
from daemon.summit.planning.states import RepoRef
from daemon.summit.planning.tree import load_entry
from tests.unit.summit.helpers import commit_id, entry, stone, tree

#: 9 levels of 9 aliases: a billion values when expanded (and summit once wrote them all).
BOMB = ("name: bomb\nversion: 1\nrelease: 1\n"
        'lol: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
        + "".join(f"l{n}: &{chr(98 + n)} [{','.join([f'*{chr(97 + n)}'] * 9)}]\n"
                  for n in range(8))).encode()


def test_a_broken_manifest_reports_its_line_and_keeps_the_recipe() -> None:
    data = b'/* c */\n{\n "packages": {\n  "a": {"name": "a",}\n }\n}\n'
    got = load_entry("a/acl", stone("acl", 1), data, "x86_64")
    assert got.recipe is not None and got.manifest is None
    (problem,) = got.problems
    assert problem.file == "a/acl/manifest.x86_64.jsonc" and problem.line == 4
    assert got.providers == {"acl"}


def test_a_broken_recipe_becomes_a_record() -> None:
    got = load_entry("a/acl", b"name: [", None, "x86_64")
    assert got.recipe is None
    assert got.problems[0].file == "a/acl/stone.yaml" and got.problems[0].line >= 1


def test_the_version_is_kept_as_written() -> None:
    got = load_entry("v", b"name: v\nversion: 1.10\nrelease: 1\n", None, "x86_64")
    assert got.recipe is not None and got.recipe.version == "1.10"


def test_an_alias_bomb_is_a_recipe_problem_and_its_sibling_is_planned() -> None:
    started = time.monotonic()
    bomb = load_entry("r/bomb", BOMB, None, "x86_64")
    assert time.monotonic() - started < 5
    assert bomb.recipe is None
    (problem,) = bomb.problems
    assert problem.file == "r/bomb/stone.yaml" and problem.line == 4
    assert "anchors" in problem.message
    planner = Planner(RepoRef(name="r", url="https://example.org/r.git"), PublishedIndex())
    decision = planner.plan_tree(tree(commit_id(1), bomb, entry("sibling", 1)))
    assert {t.source for t in decision.tasks} == {"sibling"}


def test_a_release_beyond_64_bits_is_a_recipe_problem() -> None:
    got = load_entry("r/big", b"name: big\nversion: 1\nrelease: 9223372036854775808\n", None,
                     "x86_64")
    assert got.recipe is None
    (problem,) = got.problems
    assert problem.line == 3 and "'release' must be a whole number" in problem.message


def test_a_huge_recipe_is_refused_quickly() -> None:
    data = b"name: huge\nversion: 1\nrelease: 1\ndescription: |\n" + b"  word\n" * 200_000
    started = time.monotonic()
    got = load_entry("r/huge", data, None, "x86_64")
    assert time.monotonic() - started < 1
    assert got.recipe is None and "a recipe may have at most" in got.problems[0].message
