"""``cairn plan --environment``: the planner resolves build dependencies against the
environment's provides, as summit does; without it they are unresolvable."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from daemon.buildenv.manifest import encode
from daemon.cli import main
from tests.unit.buildenv.support import make_tree, pack_tree
from tests.unit.summit.helpers import stone

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@localhost"]


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "recipes"
    (repo / "app").mkdir(parents=True)
    (repo / "app" / "stone.yaml").write_bytes(stone("app", 1, ["binary(tool)"]))
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "app"]):
        subprocess.run([*GIT, "-C", str(repo), *args], check=True, capture_output=True)
    return repo


def _plan(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    assert main(["plan", *args, "--json"]) == 0
    result: dict[str, object] = json.loads(capsys.readouterr().out)
    return result


def test_the_environment_resolves_what_it_provides(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    repo = _repo(tmp_path)
    record, archive = pack_tree(make_tree(tmp_path / "root"), tmp_path / "env")
    (tmp_path / "env.json").write_bytes(encode(record))
    (task,) = _plan(capsys, str(repo))["tasks"]  # type: ignore[misc]
    assert task["state"] == "blocked", task
    assert {"kind": "unresolvable", "name": "binary(tool)"} in task["blocked_by"]
    for given in (archive, tmp_path / "env.json"):
        (task,) = _plan(capsys, str(repo), "--environment", str(given))["tasks"]  # type: ignore[misc]
        assert task["state"] == "ready", task
