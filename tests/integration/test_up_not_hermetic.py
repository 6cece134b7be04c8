"""`cairn up` on the machine's own system says so: its output, its summary, the API and every
package it makes are labelled not hermetic. It builds there when asked (``--host``), or when
it cannot make its build environment (here: no mmdebstrap on the PATH), saying why and what
to install."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest

from tests.integration.cairn_up import make_recipes, path_without, until_idle
from tests.support.index import read_index

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.mark.parametrize("why", ["host", "no-mmdebstrap"])
def test_cairn_up_says_its_builds_are_not_hermetic(tmp_path: Path, why: str,
                                                   request: pytest.FixtureRequest) -> None:
    """``--host`` asks for the host; without it, on a machine without mmdebstrap (and no
    environment made before: an empty cache), ``cairn up`` says why it cannot make its
    environment and what to install, and falls back to the host."""
    recipes = make_recipes(tmp_path, lines=1, pause=0.0)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "CAIRN_CACHE_DIR": str(tmp_path / "cache")}
    extra = ["--host"] if why == "host" else []
    if why == "no-mmdebstrap":
        bin_dir = Path("/var/tmp") / f"cairn-test-path-{uuid.uuid4().hex[:8]}"
        request.addfinalizer(lambda: shutil.rmtree(bin_dir, ignore_errors=True))
        env["PATH"] = path_without(bin_dir, "mmdebstrap")
    done = until_idle(tmp_path, recipes, env, *extra, timeout=200)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "not hermetic: builds run on this machine's own system" in done.stdout
    assert "packages: not hermetic (built on this machine's own system)" in done.stdout
    missing = ("build environment: cannot make one here: mmdebstrap is not installed, and it "
               "makes the environment's Debian base: install it (Debian: apt-get install "
               "mmdebstrap)")
    assert (missing in done.stdout) is (why == "no-mmdebstrap"), done.stdout
    assert ("--host asks for it" in done.stdout) is (why == "host"), done.stdout
    summary = done.summary()
    assert summary["hermetic"] is False and summary["environment"] is None
    assert "--environment" in summary["not_hermetic"]
    if why == "no-mmdebstrap":
        assert "apt-get install mmdebstrap" in summary["not_hermetic"]
    assert not list((tmp_path / "cache").glob("**/*.tar.zst"))
    index = Path(summary["repository"]["path"]) / "volatile/x86_64/current/index.json"
    packages = read_index(index).packages
    assert packages and {p.environment for p in packages} == {None}
