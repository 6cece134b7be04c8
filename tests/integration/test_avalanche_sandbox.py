"""The sandbox: a build cannot write outside its tree nor reach the network; it runs as an
unprivileged uid of its own without capabilities; and a builder that cannot arrange all that
refuses to build."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from daemon.avalanche.build import run_build
from daemon.avalanche.config import SandboxMode
from daemon.avalanche.identity import lease
from daemon.avalanche.sandbox import sandbox_problems
from events.payloads import Outcome
from tests.integration.test_avalanche_outcomes import DATA, _recipe, _stone
from tests.unit.avalanche.support import add_recipe, config, make_repo, task_for

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")


@pytest.mark.parametrize("where", ["test-tmp", "home"])
def test_build_cannot_write_outside_its_directories(tmp_path: Path, where: str) -> None:
    if where == "home":
        target = Path.home() / f".cairn-sandbox-probe-{uuid.uuid4().hex}"
    else:
        outside = tmp_path / "outside"
        outside.mkdir()
        target = outside / "escaped.txt"
    repo, commit = _recipe(tmp_path, "escape", f"echo escaped > {target}")
    cfg = config(tmp_path / "b", sandbox=SandboxMode.BWRAP)
    try:
        result = run_build(task_for(repo, commit, "escape"), cfg)
        assert result.outcome is Outcome.FAILED
        assert result.reason is not None and "step build" in result.reason
        assert not target.exists()
    finally:
        target.unlink(missing_ok=True)


async def test_network_is_unavailable_inside(tmp_path: Path) -> None:
    connections: list[object] = []

    async def handle(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        build = f"exec 3<>/dev/tcp/127.0.0.1/{port}\necho connected"
        repo, commit = _recipe(tmp_path, "net", build)
        cfg = config(tmp_path / "b", sandbox=SandboxMode.BWRAP)
        result = await asyncio.to_thread(run_build, task_for(repo, commit, "net"), cfg)
    finally:
        server.close()
        await server.wait_closed()
    assert result.outcome is Outcome.FAILED
    assert "connected" not in result.log_path.read_text().splitlines()
    assert connections == []


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the builder must run as root")


def _field(log: str, key: str) -> str:
    return next(ln.split(":", 1)[1].strip() for ln in log.splitlines() if ln.startswith(key + ":"))


@needs_root
def test_steps_run_as_a_leased_uid_without_capabilities(tmp_path: Path) -> None:
    repo, commit = _recipe(tmp_path, "whoami", "cat /proc/self/status\necho \"home=$HOME\"")
    cfg = config(tmp_path / "b", build_uid=2_000_300_000, build_uids=4)
    result = run_build(task_for(repo, commit, "whoami"), cfg)
    assert result.outcome is Outcome.SUCCESS, result.reason
    log = result.log_path.read_text()
    uids = {int(u) for u in _field(log, "Uid").split()}
    assert len(uids) == 1 and 2_000_300_000 <= uids.pop() < 2_000_300_004
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(_field(log, cap), 16) == 0, cap
    assert _field(log, "NoNewPrivs") == "1"
    assert "home=/build/home" in log.splitlines()


@needs_root
async def test_concurrent_builds_run_as_different_uids(tmp_path: Path) -> None:
    repo, commit = make_repo(tmp_path / "recipes")
    for name in ("one", "two"):
        commit = add_recipe(repo, name, _stone(name, "echo uid=$(id -u)\nsleep 1"),
                            {"data.txt": DATA})  # fmt: skip
    cfg = config(tmp_path / "b", build_uid=2_000_400_000, build_uids=4)
    results = await asyncio.gather(*(asyncio.to_thread(run_build, task_for(repo, commit, n), cfg)
                                      for n in ("one", "two")))  # fmt: skip
    uids = []
    for result in results:
        assert result.outcome is Outcome.SUCCESS, result.reason
        uids += [ln for ln in result.log_path.read_text().splitlines() if ln.startswith("uid=")]
    assert len(uids) == 2 and uids[0] != uids[1]


def test_build_is_refused_without_bubblewrap(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    repo, commit = _recipe(tmp_path, "nobwrap", "touch ran")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    result = run_build(task_for(repo, commit, "nobwrap"), config(tmp_path / "b"))
    assert result.outcome is Outcome.INFRASTRUCTURE
    assert result.reason is not None and "bubblewrap" in result.reason
    assert "install it" in result.reason
    assert "step build" not in result.log_path.read_text()


@needs_root
def test_build_is_refused_when_no_build_uid_is_free(tmp_path: Path) -> None:
    repo, commit = _recipe(tmp_path, "nouid", "touch ran")
    cfg = config(tmp_path / "b", build_uid=2_000_500_000, build_uids=1)
    with lease(cfg.build_uid, cfg.build_uids, cfg.uid_lock_dir):
        result = run_build(task_for(repo, commit, "nouid"), cfg)
    assert result.outcome is Outcome.INFRASTRUCTURE
    assert result.reason is not None and "in use by another build" in result.reason
    assert "build_uids" in result.reason


@needs_root
def test_a_uid_range_with_root_in_it_is_refused(tmp_path: Path) -> None:
    repo, commit = _recipe(tmp_path, "rootrange", "touch ran")
    result = run_build(task_for(repo, commit, "rootrange"),
                       config(tmp_path / "b", build_uid=0, build_uids=10))  # fmt: skip
    assert result.outcome is Outcome.INFRASTRUCTURE
    assert result.reason is not None and "build uid range 0..9 is unusable" in result.reason


def test_an_unconfined_process_is_reported_as_such() -> None:
    here = Path("/proc/self/status").read_text() + Path("/proc/self/uid_map").read_text()
    problems = sandbox_problems(here)
    assert "the command is not in a user namespace of its own" in problems
    assert "no_new_privs is not set" in problems
    assert any(p.startswith("CapBnd") for p in problems)


@needs_root
def test_a_builder_that_is_not_root_sandboxes_as_its_own_user(tmp_path: Path) -> None:
    """``cairn build-recipe`` as an unprivileged user: bubblewrap runs as that user, and the
    builder's own directory is out of the build's sight."""
    base = Path("/var/tmp") / f"cairn-nonroot-{uuid.uuid4().hex[:10]}"
    base.mkdir(mode=0o755)
    try:
        repo, commit = _recipe(base, "plainuser",
                               f"id -u\ncat {base / 'root' / 'secret'} || true")
        root = base / "root"
        root.mkdir()
        (root / "secret").write_text("builder-private\n")
        for path in (root, root / "secret", *repo.rglob("*"), repo):
            os.chown(path, 65534, 65534, follow_symlinks=False)
        done = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable,
             "-m", "daemon.cli", "build-recipe", str(repo), "plainuser", "--commit", commit,
             "--root", str(root)],
            cwd="/", capture_output=True, text=True, timeout=120, check=False,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
                 "HOME": str(root)},
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert "65534" in done.stdout.splitlines()
        assert "builder-private" not in done.stdout
    finally:
        shutil.rmtree(base, ignore_errors=True)


BOMB_STONE = """name: bomb
version: 1.0.0
release: 1
summary: A fork bomb
build: |
    python3 "$(dirname "$pkgdir")/watch.py"
"""
#: A fork bomb (bounded at 2^9 shells, each with a sleep, in case a limit ever goes missing).
BOMB = "b() { [ $1 -gt 0 ] && { b $(($1-1)) | b $(($1-1)) & }; sleep 20; }; b 9\n"
#: Starts the bomb, then counts the processes the build has (its PID namespace) for 5 s.
WATCH = """import os, subprocess, time
subprocess.Popen(["bash", os.path.join(os.path.dirname(__file__), "bomb.sh")])
peak = 0
for _ in range(50):
    time.sleep(0.1)
    peak = max(peak, sum(1 for p in os.listdir("/proc") if p.isdigit()))
print(f"peak {peak} processes", flush=True)
raise SystemExit(1)
"""


def _processes_of(uids: range) -> list[int]:
    """Live processes of ``uids`` (a zombie waiting for init to reap it runs nothing)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid in uids and (entry / "stat").read_text().rsplit(
                        ")", 1)[1].split()[0] != "Z":
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@needs_root
def test_a_fork_bomb_is_contained_by_the_process_limit(tmp_path: Path) -> None:
    repo, _ = make_repo(tmp_path / "recipes")
    commit = add_recipe(repo, "bomb", BOMB_STONE,
                        {"bomb.sh": BOMB.encode(), "watch.py": WATCH.encode()})  # fmt: skip
    uids = range(2_000_200_000, 2_000_200_004)
    cfg = config(tmp_path / "b", build_uid=uids.start, build_uids=len(uids), max_processes=64)
    result = run_build(task_for(repo, commit, "bomb"), cfg)
    assert result.outcome is Outcome.FAILED, result.reason
    log = result.log_path.read_text()
    peak = int(next(ln.split()[1] for ln in log.splitlines() if ln.startswith("peak ")))
    assert peak <= 64, log[-2000:]
    assert "Resource temporarily unavailable" in log
    assert result.reason is not None and "process limit (64 processes" in result.reason
    assert _processes_of(uids) == []
