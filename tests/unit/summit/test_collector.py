"""A whole tree is read and planned with the cyclic collector paused, and it runs again
after: as it was found, also when the work failed."""

from __future__ import annotations

import gc
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.summit.gitrepo import Mirror
from daemon.summit.planning.collector import collector_paused
from daemon.summit.planning.planner import Planner
from daemon.summit.planning.states import RepoRef
from tests.unit.summit.helpers import commit_id, entry, stone, tree


@pytest.fixture(autouse=True)
def collector_on() -> Iterator[None]:
    gc.enable()
    yield
    gc.enable()


def test_paused_then_resumed_as_found_also_on_failure() -> None:
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()
    gc.disable()  # someone else paused it: it stays paused
    with collector_paused():
        pass
    assert not gc.isenabled()


def test_a_tree_is_planned_with_the_collector_paused(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bool] = []
    planner = Planner(RepoRef(name="r", url="https://example.org/r.git"))
    real = planner._put_entry

    def spy(*args: Any) -> None:
        seen.append(gc.isenabled())
        real(*args)

    monkeypatch.setattr(planner, "_put_entry", spy)
    decision = planner.plan_tree(tree(commit_id(1), entry("a", 1), entry("b", 1, ["a"])))
    assert seen == [False, False] and gc.isenabled()
    assert {t.source for t in decision.tasks} == {"a", "b"}


def test_a_tree_is_read_with_the_collector_paused(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a/stone.yaml").write_bytes(stone("a", 1))
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "HOME": "/tmp",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "one"]):
        subprocess.run(["git", *args], cwd=tmp_path, env=env, check=True)
    mirror = Mirror.local(tmp_path)
    seen: list[bool] = []
    real = mirror._entry

    def spy(*args: Any) -> Any:
        seen.append(gc.isenabled())
        return real(*args)

    monkeypatch.setattr(mirror, "_entry", spy)
    got = mirror.read_tree(mirror.head(), "x86_64")
    assert seen == [False] and gc.isenabled() and set(got.entries) == {"a"}
