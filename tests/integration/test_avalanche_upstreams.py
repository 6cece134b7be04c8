"""A farm build reads no host file as an upstream, and a failure reason never gives away the
hash of something the recipe did not provide (the reason is public, on summit's API)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from daemon.avalanche.build import run_build
from events.payloads import Outcome
from tests.integration.test_avalanche_outcomes import STONE
from tests.unit.avalanche.support import add_recipe, config, make_repo, task_for

WRONG = "ab" * 32


@pytest.mark.parametrize("url", ["file:///etc/passwd", "/etc/passwd"])
def test_a_host_file_upstream_fails_without_its_hash(tmp_path: Path, url: str) -> None:
    stone = STONE.format(name="hostfile", sha=WRONG, build="    true", install_extra="").replace(
        "- data.txt:", f"- {url}:")
    repo, _ = make_repo(tmp_path / "recipes")
    commit = add_recipe(repo, "hostfile", stone)
    result = run_build(task_for(repo, commit, "hostfile"), config(tmp_path / "b"))
    assert result.outcome is Outcome.FAILED
    assert result.reason is not None and "recipe's directory" in result.reason
    actual = hashlib.sha256(Path("/etc/passwd").read_bytes()).hexdigest()
    shown = result.reason + result.log_path.read_text()
    assert actual not in shown
    assert set(re.findall(r"[0-9a-f]{64}", shown)) <= {WRONG}
    assert list((tmp_path / "b" / "cache").rglob(actual)) == []
