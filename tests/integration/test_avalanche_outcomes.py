"""Every way a build can end: the right outcome and a reason a person can act on."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from daemon.avalanche.artefacts import ArtefactStore
from daemon.avalanche.build import run_build
from daemon.avalanche.buildlog import LINE_MAX
from daemon.avalanche.config import SandboxMode
from daemon.avalanche.runner import start_build
from events.payloads import Outcome
from tests.unit.avalanche.support import add_recipe, config, make_repo, task_for, write_index

STONE = """name: {name}
version: 1.0.0
release: 1
summary: test recipe
upstreams:
    - data.txt: {sha}
build: |
{build}
install: |
    %install_file data.txt %(installroot)%(datadir)/{name}/data.txt{install_extra}
"""
DATA = b"some data\n"


def _stone(name: str, build: str, sha: str | None = None, install_extra: str = "") -> str:
    body = "\n".join(f"    {line}" for line in build.splitlines())
    return STONE.format(name=name, sha=sha or hashlib.sha256(DATA).hexdigest(), build=body,
                        install_extra=install_extra)


def _recipe(tmp_path: Path, name: str, build: str, sha: str | None = None,
            install_extra: str = "") -> tuple[Path, str]:
    repo, _ = make_repo(tmp_path / "recipes")
    commit = add_recipe(repo, name, _stone(name, build, sha, install_extra), {"data.txt": DATA})
    return repo, commit


def test_wrong_upstream_hash_fails_naming_url_and_hashes(tmp_path: Path) -> None:
    wrong = "ab" * 32
    repo, commit = _recipe(tmp_path, "badhash", "true", sha=wrong)
    result = run_build(task_for(repo, commit, "badhash"), config(tmp_path / "b"))
    assert result.outcome is Outcome.FAILED
    assert result.reason is not None
    assert "data.txt" in result.reason and wrong in result.reason
    assert hashlib.sha256(DATA).hexdigest() in result.reason
    assert result.artefacts == ()
    assert not (tmp_path / "b" / "cache" / "sources" / wrong).exists()


def test_failing_step_fails_with_step_status_and_last_output(tmp_path: Path) -> None:
    repo, commit = _recipe(tmp_path, "broken", "echo 'error: frobnicator missing' >&2\nexit 3")
    lines: list[str] = []
    result = run_build(task_for(repo, commit, "broken"), config(tmp_path / "b"), lines.append)
    assert result.outcome is Outcome.FAILED
    assert result.reason is not None
    assert "step build exited with status 3" in result.reason
    assert "frobnicator missing" in result.reason
    assert "error: frobnicator missing" in lines  # streamed live ...
    assert "error: frobnicator missing" in result.log_path.read_text()  # ... and kept
    assert not (tmp_path / "b" / "builds" / result.build_id).exists()


def test_build_outliving_its_timeout_is_killed(tmp_path: Path) -> None:
    marker = tmp_path / "survivor"
    # A background child that would write the marker later: killing the group stops it too.
    build = f"(sleep 3; touch {marker}) &\nsleep 60"
    repo, commit = _recipe(tmp_path, "slow", build)
    cfg = config(tmp_path / "b", timeout_s=1.5, kill_grace_s=0.5)
    result = run_build(task_for(repo, commit, "slow"), cfg)
    assert result.outcome is Outcome.TIMEOUT
    assert result.reason is not None and "time limit" in result.reason
    assert "step build" in result.reason
    assert not marker.exists()


async def test_cancelled_build_reports_cancelled(tmp_path: Path) -> None:
    repo, commit = _recipe(tmp_path, "long", "echo started-long-step\nsleep 60")
    started = asyncio.Event()
    lines: list[str] = []

    def on_line(line: str) -> None:
        lines.append(line)
        if line == "started-long-step":
            started.set()

    running = start_build(task_for(repo, commit, "long"), config(tmp_path / "b"), on_line)
    await asyncio.wait_for(started.wait(), 60)
    running.cancel("operator asked")
    result = await asyncio.wait_for(running.wait(), 60)
    assert result.outcome is Outcome.CANCELLED
    assert result.reason is not None and "cancelled" in result.reason
    assert result.build_id == running.build_id


def test_dependency_nothing_provides_fails_naming_it(tmp_path: Path) -> None:
    repo, commit = make_repo(tmp_path / "recipes")
    index = write_index(tmp_path / "served", [])
    task = task_for(repo, commit, "greet", index_url=str(index))
    result = run_build(task, config(tmp_path / "b"))
    assert result.outcome is Outcome.FAILED
    assert result.reason is not None and "pkgconfig(libgreet)" in result.reason


def test_release_mismatch_and_missing_commit(tmp_path: Path) -> None:
    repo, commit = make_repo(tmp_path / "recipes")
    result = run_build(task_for(repo, commit, "libgreet", release=7), config(tmp_path / "b"))
    assert result.outcome is Outcome.FAILED
    assert result.reason is not None and "release 7" in result.reason
    gone = "f" * 40
    result = run_build(task_for(repo, gone, "libgreet"), config(tmp_path / "b"))
    assert result.outcome is Outcome.INFRASTRUCTURE
    assert result.reason is not None and gone in result.reason


def test_build_done_payload_has_urls_and_log(tmp_path: Path) -> None:
    repo, commit = make_repo(tmp_path / "recipes")
    cfg = config(tmp_path / "b")
    task = task_for(repo, commit, "libgreet")
    result = run_build(task, cfg)
    store = ArtefactStore(cfg.artefacts_dir, "http://builder.example:8080")
    done = store.build_done(task, result, "builder-1")
    assert done.outcome is Outcome.SUCCESS
    assert {a.name for a in done.artefacts} == {"libgreet", "libgreet-devel"}
    for artefact in done.artefacts:
        assert artefact.url.startswith(f"http://builder.example:8080/artefacts/{result.build_id}/")
        assert (
            artefact.size
            == (cfg.artefacts_dir / result.build_id / artefact.filename).stat().st_size
        )
    assert done.log_url is not None and done.log_url.endswith("/build.log")


def test_unsandboxed_build_warns_in_its_log(tmp_path: Path) -> None:
    repo, commit = _recipe(tmp_path, "plain", "true")
    cfg = config(tmp_path / "b", sandbox=SandboxMode.NONE)
    result = run_build(task_for(repo, commit, "plain"), cfg)
    assert result.outcome is Outcome.SUCCESS, result.reason
    warnings = [ln for ln in result.log_path.read_text().splitlines() if ln.startswith("WARNING")]
    assert warnings and "unsandboxed" in warnings[0]


def test_a_huge_log_line_is_cut_in_the_log_and_the_live_stream(tmp_path: Path) -> None:
    build = "python3 -c \"import sys; sys.stdout.write('x' * 20_000_000 + chr(10))\"\necho after"
    repo, commit = _recipe(tmp_path, "chatty", build)
    lines: list[str] = []
    result = run_build(task_for(repo, commit, "chatty"), config(tmp_path / "b"), lines.append)
    assert result.outcome is Outcome.SUCCESS, result.reason
    cut = "x" * LINE_MAX + f" [... line cut: {20_000_000 - LINE_MAX} more bytes]"
    kept = result.log_path.read_text().splitlines()
    assert cut in kept and cut in lines
    assert kept.index(cut) + 1 == kept.index("after")
    assert max(len(line) for line in kept + lines) == len(cut)
    assert result.log_path.stat().st_size < 64 * 1024
