"""A real ``cairn up`` in a subprocess, on a recipe repository made by the test: running
for the dashboard and API tests (real HTTP on 127.0.0.1, real builds, real git), or until
idle for the tests of what it built and said (:func:`until_idle`)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
CAIRN = [sys.executable, "-m", "daemon.cli"]

SLOW = """name: slow
version: 1.0.0
release: 1
summary: Takes its time, talking
license: MPL-2.0
build: |
    for i in $(seq 1 {lines}); do echo "slow step $i of {lines}"; sleep {pause}; done
install: |
    mkdir -p $installdir/usr/bin
    printf '#!/bin/sh\\necho slow\\n' > $installdir/usr/bin/slow
    chmod 755 $installdir/usr/bin/slow
"""
SLOW_MANIFEST = {
    "manifest-version": "0.2", "source-name": "slow", "source-release": "1",
    "source-version": "1.0.0",
    "packages": {"slow": {"name": "slow", "provides": ["binary(slow)"],
                          "files": ["/usr/bin/slow"], "depends": [], "build-depends": []}},
}
AFTER = """name: after-slow
version: 1.0.0
release: 1
summary: Needs the slow tool to build
license: MPL-2.0
builddeps:
    - binary(slow)
build: |
    slow > said.txt
install: |
    mkdir -p $installdir/usr/share/after-slow && cp said.txt $installdir/usr/share/after-slow/
"""


def make_recipes(root: Path, lines: int = 16, pause: float = 0.5) -> Path:
    """A git repository with ``slow`` (talks for lines * pause seconds) and ``after-slow``
    (build-depends on the tool slow provides, so it waits for slow's publication)."""
    repo = root / "recipes"
    (repo / "slow").mkdir(parents=True)
    (repo / "after-slow").mkdir()
    (repo / "slow" / "stone.yaml").write_text(SLOW.format(lines=lines, pause=pause))
    (repo / "slow" / "manifest.x86_64.jsonc").write_text(json.dumps(SLOW_MANIFEST))
    (repo / "after-slow" / "stone.yaml").write_text(AFTER)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"],
                 ["-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-q", "-m",
                  "recipes"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)
    return repo


def free_port_pair() -> int:
    """A port P with P and P+1 free (summit on P, vessel on P+1)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port >= 65535:
            continue
        with socket.socket() as second:
            try:
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two consecutive free ports on 127.0.0.1")


@dataclass
class CairnUp:
    url: str
    state: Path
    process: subprocess.Popen[bytes]
    output: Path

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return json.loads(response.read())

    def token(self) -> str:
        return (self.state / "summit" / "admin.token").read_text().strip()

    def wait_for(self, what: str, predicate: Any, timeout: float = 60.0) -> Any:
        """Poll the API until ``predicate()`` returns something true; fail saying what."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"cairn up exited ({self.process.returncode}) while "
                                     f"waiting for {what}:\n{self.output.read_text()[-3000:]}")
            with contextlib.suppress(OSError, urllib.error.URLError, ValueError):
                found = predicate()
                if found:
                    return found
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}")


@contextlib.contextmanager
def running_farm(tmp_path: Path, recipes: Path, builders: int = 1,
                 backend: str = "script") -> Iterator[CairnUp]:
    """``cairn up`` with its own state directory and ports; stopped with SIGINT."""
    port = free_port_pair()
    state = tmp_path / "state"
    output = tmp_path / "cairn-up.out"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with output.open("wb") as out:
        process = subprocess.Popen(
            [*CAIRN, "up", "--state", str(state), "--port", str(port), "--recipes",
             str(recipes), "--builders", str(builders), "--backend", backend,
             "--poll-interval", "1", "--host"],
            cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)
    farm = CairnUp(f"http://127.0.0.1:{port}", state, process, output)
    try:
        farm.wait_for("summit's API", lambda: farm.get("/api/v1/overview"))
        yield farm
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


@dataclass(frozen=True)
class IdleRun:
    """What a ``cairn up --until-idle`` said and its summary (``--summary-json``)."""

    returncode: int
    stdout: str
    stderr: str
    summary_file: Path

    def summary(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.summary_file.read_text())
        return loaded


def until_idle(tmp_path: Path, recipes: Path, env: dict[str, str], *extra: str,
               timeout: float = 240) -> IdleRun:
    """``cairn up --until-idle`` on ``recipes`` with one builder, its own state directory
    and ports, in the environment ``env``; ``extra``: more options (``--host``...)."""
    summary_file = tmp_path / "summary.json"
    done = subprocess.run(
        [*CAIRN, "up", "--state", str(tmp_path / "state"), "--port", str(free_port_pair()),
         "--recipes", str(recipes), "--builders", "1", "--poll-interval", "1",
         "--until-idle", "--summary-json", str(summary_file), *extra],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, env=env)
    return IdleRun(done.returncode, done.stdout, done.stderr, summary_file)


def path_without(bin_dir: Path, tool: str) -> str:
    """A PATH with every tool of this machine but ``tool`` (links in ``bin_dir``, which the
    build users must reach: not under the test's 0700 /tmp directory)."""
    bin_dir.mkdir(mode=0o755)
    for directory in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for entry in os.scandir(directory):
            target = bin_dir / entry.name
            if entry.name != tool and not target.exists() and os.access(entry.path, os.X_OK):
                target.symlink_to(entry.path)
    return str(bin_dir)
