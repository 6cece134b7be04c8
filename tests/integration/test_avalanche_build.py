"""A builder's build path without the broker: real git, gcc, HTTP on 127.0.0.1, GNU tar."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from daemon.avalanche.build import BuildResult, run_build
from daemon.avalanche.packaging import check_archive
from daemon.formats.manifest import parse_manifest
from events.payloads import Outcome
from tests.unit.avalanche.support import (
    EXAMPLES,
    config,
    make_repo,
    serve_dir,
    task_for,
    untar,
    write_index,
)

pytestmark = pytest.mark.slow


async def _build(
    repo: Path, commit: str, name: str, root: Path, index_url: str | None
) -> BuildResult:
    task = task_for(repo, commit, name, index_url=index_url)
    result = await asyncio.to_thread(run_build, task, config(root), None)
    assert result.outcome is Outcome.SUCCESS, result.log_path.read_text()
    return result


def _run(binary: Path, root: Path) -> str:
    env = {"LD_LIBRARY_PATH": str(root / "usr/lib"), "PATH": "/usr/bin:/bin"}
    return subprocess.run([str(binary)], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip


async def test_program_built_against_the_served_library_runs(tmp_path: Path) -> None:
    repo, commit = make_repo(tmp_path / "recipes")
    served = tmp_path / "served"
    lib = await _build(repo, commit, "libgreet", tmp_path / "builder", None)
    write_index(served, [lib])
    async with serve_dir(served) as base:
        prog = await _build(repo, commit, "greet", tmp_path / "builder", f"{base}/index.json")
    log = prog.log_path.read_text()
    assert "dependency libgreet-devel-1.0.0-1-1 installed" in log
    assert "dependency libgreet-1.0.0-1-1 installed" in log  # transitively, for the .so link

    system = tmp_path / "system"
    for artefact in (*lib.artefacts, *prog.artefacts):
        untar(artefact.path, system)
    source = (EXAMPLES / "libgreet" / "src" / "greet.c").read_text()
    expected = source.split('return "', 1)[1].split('"', 1)[0]
    assert _run(system / "usr/bin/greet", system) == expected
    manifest = check_archive(prog.artefacts[0].path)
    assert "binary(greet)" in manifest.provides
    assert "soname(libgreet.so.1(x86_64))" in manifest.depends
    assert (system / ".cairn/packages/greet.json").is_file()


async def test_build_tool_dependency_and_diamond(tmp_path: Path) -> None:
    repo, commit = make_repo(tmp_path / "recipes")
    served = tmp_path / "served"
    done: list[BuildResult] = []
    order = ["libgreet", "greet", "greet-banner", "diamond-a", "diamond-b", "diamond-c",
             "diamond-d"]  # fmt: skip
    async with serve_dir(served) as base:
        for name in order:
            write_index(served, done)
            done.append(await _build(repo, commit, name, tmp_path / "b", f"{base}/index.json"))
    system = tmp_path / "system"
    for result in done:
        for artefact in result.artefacts:
            untar(artefact.path, system)
    greeting = _run(system / "usr/bin/greet", system)
    banner = (system / "usr/share/greet-banner/banner.txt").read_text().strip()
    assert banner == f"*** {greeting} ***"
    assert _run(system / "usr/bin/diamond-d", system) == "diamond: b=11 c=101"


async def test_committed_manifests_match_what_the_build_produces(tmp_path: Path) -> None:
    repo, commit = make_repo(tmp_path / "recipes")
    served = tmp_path / "served"
    done: list[BuildResult] = []
    async with serve_dir(served) as base:
        for name in ("libgreet", "greet"):
            write_index(served, done)
            done.append(await _build(repo, commit, name, tmp_path / "b", f"{base}/index.json"))
    for result, name in zip(done, ("libgreet", "greet"), strict=True):
        committed = parse_manifest(
            (EXAMPLES / name / "manifest.x86_64.jsonc").read_bytes(), "committed")
        built = parse_manifest((result.log_path.parent / "manifest.x86_64.jsonc").read_bytes(),
                               "built")
        assert committed.packages == built.packages
