"""Build output shown on a person's terminal has its control characters escaped: by
`cairn build-recipe` (the live log on stdout) and by `cairn up` (failure reasons, which quote
the last line of output). The build log itself keeps the bytes as written: it is data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.avalanche.support import add_recipe, make_repo

TREE = Path(__file__).resolve().parents[2]
#: Clears the screen, retitles the window, rings the bell, reverses the text direction.
NASTY = r"printf 'before \033[2J\033]0;pwned\007 \342\200\256reversed\n'"
STONE = f"""name: nasty
version: 1.0.0
release: 1
summary: Prints terminal escapes
build: |
    {NASTY}
    exit 1
"""
ESCAPED = r"before \x1b[2J\x1b]0;pwned\x07 \u202ereversed"


def _cairn(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "daemon.cli", *args], cwd=TREE,
                          env={**os.environ, "PYTHONPATH": str(TREE)}, capture_output=True,
                          text=True, timeout=timeout, check=False)  # fmt: skip


def _raw_controls(text: str) -> set[str]:
    return {c for c in text if (ord(c) < 32 and c not in "\n\t") or c == "\u202e"}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path, _ = make_repo(tmp_path / "recipes")
    add_recipe(path, "nasty", STONE)
    return path


def test_build_recipe_escapes_build_output(tmp_path: Path, repo: Path) -> None:
    done = _cairn("build-recipe", str(repo), "nasty", "--root", str(tmp_path / "root"))
    assert done.returncode == 1, done.stdout + done.stderr
    assert _raw_controls(done.stdout) == set()
    assert ESCAPED in done.stdout.splitlines()
    log = next((tmp_path / "root" / "artefacts").glob("*/build.log")).read_text()
    assert "\x1b]0;pwned\x07" in log  # the log keeps what the build wrote


@pytest.mark.timeout(300)
def test_cairn_up_escapes_failure_reasons(tmp_path: Path, repo: Path) -> None:
    done = _cairn("up", "--recipes", str(repo), "--state", str(tmp_path / "state"), "--port",
                  "0", "--builders", "1", "--poll-interval", "0.5", "--until-idle", "--host")
    assert done.returncode == 1, done.stdout + done.stderr
    failed = [ln for ln in done.stderr.splitlines() if ln.startswith("failed: nasty")]
    assert len(failed) == 1 and ESCAPED in failed[0], done.stderr
    assert _raw_controls(done.stdout + done.stderr) == set()
