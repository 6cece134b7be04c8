"""Recipe keys a build applies or refuses by name, through the builder's own build path
(real git, bubblewrap, gcc, HTTP on 127.0.0.1): ``networking``, refused keys, ``toolchain``
and ``emul32`` against what the build's root (here the host's) has."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.avalanche.build import BuildResult, run_build
from events.payloads import Outcome
from tests.unit.avalanche.support import add_recipe, config, git, serve_dir, task_for, untar

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed"),
]

FETCH = """name: fetcher
version: 1
release: 1
summary: Fetches at build time
license: MPL-2.0
{networking}build: |
    /usr/bin/python3 -c "import urllib.request; print(urllib.request.urlopen('{url}', timeout=5).read().decode())" > fetched.txt
install: |
    %install_file fetched.txt %(installroot)%(datadir)/fetcher/fetched.txt
"""  # noqa: E501
HELLO = """name: {name}
version: 1
release: 1
summary: Says hello
license: MPL-2.0
{extra}build: |
    echo "cflags: $CFLAGS"
    echo "ldflags: $LDFLAGS"
    printf 'int main(void) {{ return 0; }}\\n' > hello.c
    $CC $CFLAGS $LDFLAGS -o hello hello.c
install: |
    %install_bin hello
"""


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "recipes"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    return repo


async def _build(repo: Path, name: str, stone: str, root: Path, **overrides: object
                 ) -> BuildResult:  # fmt: skip
    commit = add_recipe(repo, name, stone)
    task = task_for(repo, commit, name)
    return await asyncio.to_thread(run_build, task, config(root, **overrides), None)


async def test_networking_is_given_only_where_the_builder_allows_it(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "word").write_text("over the network")
    async with serve_dir(tmp_path / "www") as base:
        url = f"{base}/word"
        refused = await _build(repo, "fetcher", FETCH.format(networking="networking: true\n",
                                                            url=url), tmp_path / "b1")
        assert refused.outcome is Outcome.FAILED
        assert "networking: true" in (refused.reason or "")
        assert "allow_networking = false" in (refused.reason or "")
        offline = await _build(repo, "fetcher", FETCH.format(networking="", url=url),
                               tmp_path / "b2", allow_networking=True)
        assert offline.outcome is Outcome.FAILED, "a build without networking reached the host"
        online = await _build(repo, "fetcher", FETCH.format(networking="networking: yes\n",
                                                           url=url),
                              tmp_path / "b3", allow_networking=True)  # fmt: skip
    assert online.outcome is Outcome.SUCCESS, online.log_path.read_text()[-3000:]
    assert "the host's network (networking: true)" in online.log_path.read_text()
    untar(online.artefacts[0].path, tmp_path / "out")
    fetched = tmp_path / "out" / "usr/share/fetcher/fetched.txt"
    assert fetched.read_text().strip() == "over the network"


async def test_a_key_the_builder_cannot_honour_fails_the_build_naming_it(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    result = await _build(repo, "pgo", HELLO.format(name="pgo", extra="workload: ./hello\n"
                                                     "tune:\n    - lto\n"), tmp_path / "b")
    assert result.outcome is Outcome.FAILED
    assert "workload: profile-guided builds" in (result.reason or "")
    log = result.log_path.read_text()
    assert "ignored: tune: not part of the stone.yaml format" in log
    assert "workload" in log


def _has(tool: str) -> bool:
    return shutil.which(tool) is not None


@pytest.mark.skipif(_has("clang") and _has("ld.lld"), reason="the host has clang and lld")
async def test_the_toolchain_follows_what_the_build_root_has(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    named = await _build(repo, "llvm", HELLO.format(name="llvm", extra="toolchain: llvm\n"),
                         tmp_path / "b1")
    assert named.outcome is Outcome.FAILED
    assert "toolchain: llvm needs clang" in (named.reason or "")
    assert "toolchain: gnu" in (named.reason or "")
    default = await _build(repo, "plain", HELLO.format(name="plain", extra=""), tmp_path / "b2")
    assert default.outcome is Outcome.SUCCESS, default.log_path.read_text()[-3000:]
    log = default.log_path.read_text()
    assert "the recipe names none and boulder's default, llvm, is not in the build" in log
    cflags = next(line for line in log.splitlines() if line.startswith("cflags: "))
    assert " -O2 " in cflags and "-flto=2" in cflags and "-march=x86-64-v2" in cflags
    assert "-D_FORTIFY_SOURCE=3" in cflags
    ldflags = next(line for line in log.splitlines() if line.startswith("ldflags: "))
    assert "-Wl,-z,relro,-z,now" in ldflags and "-Wl,-z,pack-relative-relocs" in ldflags
    gnu = await _build(repo, "gnu", HELLO.format(name="gnu", extra="toolchain: gnu\n"
                                                 "tuning:\n    - optimize: speed\n"),
                       tmp_path / "b3")  # fmt: skip
    assert gnu.outcome is Outcome.SUCCESS, gnu.log_path.read_text()[-3000:]
    log = gnu.log_path.read_text()
    assert "toolchain: gnu" in log
    cflags = next(line for line in log.splitlines() if line.startswith("cflags: "))
    assert " -O3 " in cflags and " -O2 " not in cflags


def _links_32bit(tmp_path: Path) -> bool:
    probe = subprocess.run(["gcc", "-m32", "-x", "c", "-", "-o", str(tmp_path / "p32")],
                           input="int main(void) { return 0; }\n", capture_output=True,
                           text=True, check=False)  # fmt: skip
    return probe.returncode == 0


async def test_emul32_builds_32_bit_or_fails_saying_why(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    stone = HELLO.format(name="both", extra="toolchain: gnu\nemul32: yes\n").replace(
        "    %install_bin hello\n",
        '    if [ -n "%(libsuffix)" ]; then %install_exe hello %(installroot)%(libdir)/hello32;'
        " else %install_bin hello; fi\n")
    result = await _build(repo, "both", stone, tmp_path / "b")
    if not _links_32bit(tmp_path):
        assert result.outcome is Outcome.FAILED
        assert "emul32: the recipe builds a 32-bit variant, but the build environment cannot "\
               "link a 32-bit program" in (result.reason or "")
        return
    assert result.outcome is Outcome.SUCCESS, result.log_path.read_text()[-3000:]
    untar(result.artefacts[0].path, tmp_path / "out")
    kinds = subprocess.run(["file", str(tmp_path / "out/usr/lib32/hello32"),
                            str(tmp_path / "out/usr/bin/hello")],
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "32-bit" in kinds and "64-bit" in kinds


def test_build_recipe_takes_a_recipe_directory_in_a_checkout(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    add_recipe(repo, "plain", HELLO.format(name="plain", extra="toolchain: gnu\n"))
    tree = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-m", "daemon.cli", "build-recipe", str(repo / "plain"), "--root",
         str(tmp_path / "root")],
        cwd=tree, capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "plain-1-1-1-x86_64.tar.zst" in done.stdout
