"""`cairn up` builds in its build environment: the bundled declaration's, made on a first run
and found in the user's cache on the next ones. Here the cache holds the environment the
tests share (:mod:`tests.buildenv_cache`, linked in, not made again) and mmdebstrap is not
on the PATH: ``cairn up`` must use what it cached without making anything, push it to its
vessel, and build every recipe in it; the output, the summary, the API and every package
name it. Summit resolves build dependencies against the channel and the environment's provides
only: a recipe needing the environment's gcc builds; one needing git, which this host has
and the environment has not, is blocked ``unresolvable`` naming it. (``--environment`` with an
archive or a digest: tests/unit/buildenv/test_upenv.py.)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from daemon.buildenv import declaration
from daemon.buildenv.cache import CachedEnvironment
from daemon.buildenv.cli import bundled_declaration
from daemon.commands.upenv import cache_key
from tests.buildenv_cache import cached_environment
from tests.integration.cairn_up import make_recipes, path_without, until_idle
from tests.support.index import read_index

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300),
              pytest.mark.skipif(shutil.which("bwrap") is None,
                                 reason="bubblewrap is not installed")]


NEEDS = """name: needs-{tool}
version: 1.0.0
release: 1
summary: Build-depends on {tool}
license: MPL-2.0
builddeps:
    - binary({tool})
build: |
    {tool} --version > version.txt
install: |
    mkdir -p $installdir/usr/share/{tool} && cp version.txt $installdir/usr/share/{tool}/
"""


def _recipes(tmp_path: Path) -> Path:
    """``slow`` and ``after-slow`` (a dependency on the channel), ``needs-gcc`` (on the
    environment) and ``needs-git`` (on nothing but this host)."""
    repo = make_recipes(tmp_path, lines=1, pause=0.0)
    for tool in ("gcc", "git"):
        (repo / f"needs-{tool}").mkdir()
        (repo / f"needs-{tool}" / "stone.yaml").write_text(NEEDS.format(tool=tool))
    for args in (["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@localhost", "commit",
                                 "-q", "-m", "needs"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)
    return repo


def _cairn_up(tmp_path: Path, env: dict[str, str]) -> tuple[str, dict[str, object]]:
    done = until_idle(tmp_path, _recipes(tmp_path), env)
    # 1: not every task completed (needs-git cannot start).
    assert done.returncode == 1, done.stdout + done.stderr
    return done.stdout, done.summary()


def _check_built_in(stdout: str, summary: dict[str, object], digest: str) -> None:
    assert f"build environment: debian-bookworm-c sha256:{digest}" in stdout, stdout
    assert f"packages: built in build environment debian-bookworm-c sha256:{digest}" in stdout
    assert "not hermetic" not in stdout, stdout
    assert summary["hermetic"] is True and "not_hermetic" not in summary
    assert summary["environment"]["digest"] == digest  # type: ignore[index]
    repository = summary["repository"]
    index = Path(repository["path"]) / "volatile/x86_64/current/index.json"  # type: ignore[index]
    packages = read_index(index).packages
    assert {p.name for p in packages} == {"slow", "after-slow", "needs-gcc"}
    assert {p.environment for p in packages} == {digest}
    assert summary["tasks"] == {"completed": 3, "blocked": 1}, summary
    (blocked,) = summary["blocked"]  # type: ignore[misc]
    assert blocked["source"] == "needs-git"
    assert blocked["blocked_by"] == [{"kind": "unresolvable", "name": "binary(git)"}], blocked


def test_cairn_up_builds_in_the_environment_it_cached(
        tmp_path: Path, debian_environment: CachedEnvironment,
        request: pytest.FixtureRequest) -> None:
    built = cached_environment()
    cache = tmp_path / "cache"
    # Where a first `cairn up` would have made it: the user's cache, keyed by declaration.
    made = cache / "environments" / "up" / cache_key(declaration.load(bundled_declaration()))
    made.mkdir(parents=True)
    for name in (built.archive.name, built.archive.name.removesuffix(".tar.zst") + ".json"):
        (made / name).symlink_to(built.archive.with_name(name))
    bin_dir = Path("/var/tmp") / f"cairn-test-path-{uuid.uuid4().hex[:8]}"
    request.addfinalizer(lambda: shutil.rmtree(bin_dir, ignore_errors=True))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "CAIRN_CACHE_DIR": str(cache),
           "PATH": path_without(bin_dir, "mmdebstrap")}
    stdout, summary = _cairn_up(tmp_path, env)
    assert "making it once" not in stdout
    _check_built_in(stdout, summary, debian_environment.digest)
    # vessel lists it, signed, where the builders pulled it from.
    served = Path(summary["repository"]["path"]) / "environments"  # type: ignore[index]
    listed = json.loads((served / "index.json").read_text())
    assert [e["digest"] for e in listed["environments"]] == [debian_environment.digest]
    assert (served / "index.json.minisig").is_file()

