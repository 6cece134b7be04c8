"""Command names a newcomer cannot confuse: ``cairn recipes`` for the recipe repositories
summit watches, ``cairn channel verify`` for a published package repository; the old
spellings still work for one release and say what replaced them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from daemon.cli import build_parser


@pytest.mark.parametrize(("new", "old"), [
    (["recipes", "ls"], ["repos", "ls"]),
    (["recipes", "refresh", "main"], ["repos", "refresh", "main"]),
    (["channel", "verify", "/srv/repo"], ["repo", "verify", "/srv/repo"]),
])
def test_old_spellings_reach_the_same_command(new: list[str], old: list[str]) -> None:
    parser = build_parser()
    assert parser.parse_args(new).func is parser.parse_args(old).func


def test_the_old_spelling_says_what_replaced_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-repository"
    done = subprocess.run([sys.executable, "-m", "daemon.cli", "repo", "verify", str(missing),
                           "--seen-file", str(tmp_path / "seen.json")],
                          capture_output=True, text=True)
    assert "'cairn repo verify' is now 'cairn channel verify'" in done.stderr
    assert done.returncode != 0  # and it still verifies: there is nothing there
    new = subprocess.run([sys.executable, "-m", "daemon.cli", "channel", "verify", str(missing),
                          "--seen-file", str(tmp_path / "seen.json")],
                         capture_output=True, text=True)
    assert "is now" not in new.stderr and new.returncode == done.returncode
