"""A git upstream at a pinned commit builds: repositories made by the test, served by a real
``git daemon`` on 127.0.0.1, fetched with pygit2 into the builder's cache and verified by id,
its submodule (a relative URL, as projects write them) at the commit its parent records. A
wrong commit id is refused naming both ids."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.avalanche.build import run_build
from events.payloads import Outcome
from tests.support.ports import free_port
from tests.unit.avalanche.support import add_recipe, config, git, task_for, untar

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed"),
    pytest.mark.skipif(shutil.which("git") is None, reason="git not installed"),
]

RECIPE = """name: hello-git
version: 2.0
release: 1
summary: Built from a pinned git commit
license: MPL-2.0
upstreams:
    - git|{url}: {commit}
toolchain: gnu
build: |
    $CC $CFLAGS -Ivendor/sub -o hello-git hello.c $LDFLAGS
install: |
    %install_bin hello-git
"""


def _commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``git daemon`` exporting bare repositories under ``served/``: its base URL and dir."""
    base = tmp_path / "served"
    base.mkdir()
    port = free_port()
    daemon = subprocess.Popen(
        ["git", "daemon", "--reuseaddr", "--export-all", f"--base-path={base}",
         "--listen=127.0.0.1", f"--port={port}", str(base)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        yield f"git://127.0.0.1:{port}", base
    finally:
        daemon.terminate()
        daemon.wait(10)


def _publish(tmp_path: Path, base: Path) -> tuple[str, str]:
    """``sub.git`` (a header) and ``hello.git`` (C using it through a submodule): returns
    hello's commit and sub's."""
    sub = tmp_path / "work-sub"
    sub.mkdir()
    git(sub, "init", "-q", "-b", "main")
    (sub / "greeting.h").write_text('#define GREETING "hello from a submodule"\n')
    sub_commit = _commit_all(sub, "greeting")
    git(tmp_path, "clone", "-q", "--bare", str(sub), str(base / "sub.git"))
    hello = tmp_path / "work-hello"
    hello.mkdir()
    git(hello, "init", "-q", "-b", "main")
    git(hello, "remote", "add", "origin", str(base / "hello.git"))
    (hello / "hello.c").write_text('#include <stdio.h>\n#include "greeting.h"\n'
                                   "int main(void) { puts(GREETING); return 0; }\n")
    git(hello, "-c", "protocol.file.allow=always", "submodule", "add", "-q", "../sub.git",
        "vendor/sub")
    commit = _commit_all(hello, "hello with its submodule")
    git(tmp_path, "clone", "-q", "--bare", str(hello), str(base / "hello.git"))
    assert "url = ../sub.git" in (hello / ".gitmodules").read_text()
    return commit, sub_commit


def _wait_served(url: str) -> None:
    for _ in range(100):
        if subprocess.run(["git", "ls-remote", url], capture_output=True,
                          check=False).returncode == 0:  # fmt: skip
            return
        time.sleep(0.1)
    raise AssertionError(f"git daemon does not serve {url}")


async def test_a_pinned_git_upstream_builds_with_its_submodule(
        tmp_path: Path, served: tuple[str, Path]) -> None:
    base_url, base = served
    commit, sub_commit = _publish(tmp_path, base)
    url = f"{base_url}/hello.git"
    _wait_served(url)
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    git(recipes, "init", "-q", "-b", "main")
    recipe_commit = add_recipe(recipes, "hello-git", RECIPE.format(url=url, commit=commit))
    root = tmp_path / "builder"
    result = await asyncio.to_thread(run_build, task_for(recipes, recipe_commit, "hello-git"),
                                     config(root), None)  # fmt: skip
    log = result.log_path.read_text()
    assert result.outcome is Outcome.SUCCESS, log[-3000:]
    assert f"source git {url}: commit {commit} ok" in log
    assert f"commit {sub_commit} ok (submodule)" in log
    untar(result.artefacts[0].path, tmp_path / "out")
    ran = subprocess.run([str(tmp_path / "out/usr/bin/hello-git")], capture_output=True,
                         text=True, check=True)  # fmt: skip
    assert ran.stdout == "hello from a submodule\n"
    cached = list((root / "cache" / "git").glob("*.git"))
    assert len(cached) == 3  # the recipes, hello and sub: fetched once, kept
    # Served no more, the cached mirror still builds the same commit.
    shutil.rmtree(base)
    again = await asyncio.to_thread(run_build, task_for(recipes, recipe_commit, "hello-git"),
                                    config(root), None)  # fmt: skip
    assert again.outcome is Outcome.SUCCESS, again.log_path.read_text()[-3000:]


async def test_a_wrong_commit_id_is_refused_naming_both(
        tmp_path: Path, served: tuple[str, Path]) -> None:
    base_url, base = served
    commit, _ = _publish(tmp_path, base)
    url = f"{base_url}/hello.git"
    _wait_served(url)
    wrong = "0123456789abcdef0123456789abcdef01234567"
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    git(recipes, "init", "-q", "-b", "main")
    recipe_commit = add_recipe(recipes, "hello-git", RECIPE.format(url=url, commit=wrong))
    result = await asyncio.to_thread(run_build, task_for(recipes, recipe_commit, "hello-git"),
                                     config(tmp_path / "builder"), None)  # fmt: skip
    assert result.outcome is Outcome.FAILED
    assert wrong in (result.reason or "") and commit in (result.reason or ""), result.reason
    assert "does not have" in (result.reason or "")
