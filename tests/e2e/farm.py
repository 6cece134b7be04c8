"""A whole cairn farm as separate OS processes on real RabbitMQ and Mosquitto, for the
end-to-end tests: journal, vessel, summit and builders, each `cairn <service>` started with
its configuration in the environment, killable with real signals."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.index import as_dict, read_index
from tests.unit.avalanche.support import EXAMPLES, git

MQTT_URL = os.environ.get("CAIRN_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def slow_recipe(steps: int) -> str:
    """A recipe named ``slow`` whose build prints a line every half second, ``steps`` times:
    a build long enough to act on mid-way (kill its builder, cut its host...)."""
    return f"""name        : slow
version     : 1.0.0
release     : 1
summary     : Talks while it takes its time
license     : MPL-2.0
build       : |
    for i in $(seq 1 {steps}); do echo "slow step $i"; sleep 0.5; done
install     : |
    mkdir -p $installdir/usr/share/slow && echo done > $installdir/usr/share/slow/done
"""


#: A recipe that builds in a moment, for tests of what summit decides about its releases (the
#: races of builders held or stopped while summit cancels an assignment).
QUICK = """name        : tally-docs
version     : 1.0.0
release     : 1
summary     : The tally's documentation
license     : MPL-2.0
build       : |
    echo "documenting the tally"
install     : |
    mkdir -p $installdir/usr/share/tally-docs
    echo tally > $installdir/usr/share/tally-docs/README
"""


def recipe_repo(path: Path, extra: dict[str, str] | None = None, *,
                examples: bool = True) -> Path:
    """The bundled examples (unless ``examples`` is false) plus ``extra`` recipes (name →
    stone.yaml) as a git repo."""
    if examples:
        shutil.copytree(EXAMPLES, path)
    else:
        path.mkdir(parents=True)
    for name, stone in (extra or {}).items():
        (path / name).mkdir()
        (path / name / "stone.yaml").write_text(stone)
    git(path, "init", "-q", "-b", "main")
    commit(path, "recipes")
    return path


def commit(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def bump_release(repo: Path, name: str, release: int, build: str | None = None) -> None:
    path = repo / name / "stone.yaml"
    lines = []
    for line in path.read_text().splitlines():
        if line.startswith("release"):
            line = f"release     : {release}"
        lines.append(line)
    text = "\n".join(lines) + "\n"
    if build is not None:
        head, _, _ = text.partition("build       :")
        rest = text.split("build       :", 1)[1].split("\ninstall", 1)[1]
        text = f"{head}build       : |\n    {build}\ninstall{rest}"
    path.write_text(text)


@dataclass
class ProcessFarm:
    """The processes of one farm; ``state`` holds each service's directory and log."""

    bus_url: str
    repo: Path
    state: Path
    summit_port: int = field(default_factory=free_port)
    vessel_port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    #: Each service's health server (``/healthz`` and ``/metrics``).
    health_ports: dict[str, int] = field(default_factory=dict)
    #: A Mosquitto of the farm's own: on a shared one, another farm's summit and builders
    #: (same client ids) take over this farm's MQTT sessions, and /healthz says so.
    mqtt_url: str = MQTT_URL
    #: More configuration of every builder (and of summit) this farm starts, under what a
    #: call passes: a test's shorter heartbeat or retry back-off.
    builder_env: dict[str, str] = field(default_factory=dict)
    summit_env: dict[str, str] = field(default_factory=dict)

    @property
    def summit_url(self) -> str:
        return f"http://127.0.0.1:{self.summit_port}"

    @property
    def vessel_url(self) -> str:
        return f"http://127.0.0.1:{self.vessel_port}"

    def _env(self, name: str, extra: dict[str, str]) -> dict[str, str]:
        return {**os.environ, "CAIRN_BUS_URL": self.bus_url, "CAIRN_MQTT_URL": self.mqtt_url,
                "CAIRN_STATE_DIR": str(self.state / name), "CAIRN_LOG_LEVEL": "info",
                "CAIRN_BUS_PUBLISH_TIMEOUT": "30", **extra}

    def start(self, name: str, service: str, **extra: str) -> None:
        (self.state / name).mkdir(parents=True, exist_ok=True)
        port = self.health_ports.setdefault(name, free_port())
        extra = {"CAIRN_HEALTH_ENABLED": "true", "CAIRN_HEALTH_PORT": str(port), **extra}
        log = (self.state / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "daemon.cli", service], env=self._env(name, extra),
            stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def start_summit(self, **extra: str) -> None:
        repos = json.dumps([{"name": "recipes", "url": str(self.repo), "branch": "main"}])
        self.start("summit", "summit", **{
            "CAIRN_SUMMIT_LISTEN_PORT": str(self.summit_port),
            "CAIRN_SUMMIT_REPOSITORY_URL": self.vessel_url, "CAIRN_SUMMIT_POLL_INTERVAL": "1.0",
            "CAIRN_SUMMIT_REPOSITORIES": repos, "CAIRN_SUMMIT_ADMIN_TOKEN": "test-token",
            **self.summit_env, **extra})

    def start_builder(self, name: str, **extra: str) -> None:
        """A builder process; ``extra`` sets more of its configuration (``CAIRN_AVALANCHE_
        SLOTS``, ``..._FEATURES`` as JSON...)."""
        self.start(name, "avalanche", **{"CAIRN_AVALANCHE_BUILDER": name,
                                         "CAIRN_AVALANCHE_JOBS": "2",
                                         "CAIRN_AVALANCHE_TIMEOUT_S": "300",
                                         "CAIRN_AVALANCHE_ENVIRONMENT": "host",
                                         **self.builder_env, **extra})

    def start_services(self, **summit: str) -> None:
        """Journal, vessel and summit, without builders."""
        self.start("journal", "journal")
        self.start("vessel", "vessel", CAIRN_VESSEL_LISTEN_PORT=str(self.vessel_port))
        self.wait_ready("journal")  # their queues exist before summit publishes
        self.wait_ready("vessel")
        self.start_summit(**summit)

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None,
                   token: str | None = "test-token") -> tuple[int, Any]:
        """One API call (with the admin token unless ``token`` is None): status, JSON."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with aiohttp.ClientSession() as session, session.request(
                method, self.summit_url + path, json=body, headers=headers) as response:
            return response.status, await response.json()

    def start_all(self, builders: int = 2) -> None:
        self.start("journal", "journal")
        self.start("vessel", "vessel", CAIRN_VESSEL_LISTEN_PORT=str(self.vessel_port))
        # Their queues exist before summit publishes: an event routed to the journal's queue
        # alone is not returned, and vessel would never see it. (Deployments declare every
        # queue in the broker's definitions beforehand.)
        self.wait_ready("journal")
        self.wait_ready("vessel")
        self.start_summit()
        for number in range(1, builders + 1):
            self.start_builder(f"builder{number}")

    def wait_ready(self, name: str, timeout: float = 120) -> None:
        """Until the service says it is ready (started: connected, its queues declared)."""
        log = self.state / f"{name}.log"
        deadline = time.monotonic() + timeout
        while '"event": "service.ready"' not in log.read_text(errors="replace"):
            if self.processes[name].poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{name} did not get ready:\n{self.logs()}")
            time.sleep(0.1)

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> int:
        process = self.processes[name]
        if process.poll() is None:
            process.send_signal(sig)
        return process.wait(timeout=60)

    def stop_all(self) -> dict[str, int]:
        """SIGTERM to every service at once (each stops on its own: one by one took seconds
        per farm), then each one's exit status, the last started first."""
        names = list(reversed(self.processes))
        for name in names:
            if self.processes[name].poll() is None:
                self.processes[name].send_signal(signal.SIGTERM)
        return {name: self.processes[name].wait(timeout=60) for name in names}

    def logs(self) -> str:
        return "\n".join(f"== {p.name}\n{p.read_text()[-3000:]}"
                         for p in sorted(self.state.glob("*.log")))

    async def tasks(self) -> list[dict[str, Any]]:
        async with aiohttp.ClientSession() as session, session.get(
                f"{self.summit_url}/api/v1/tasks?limit=500") as response:
            response.raise_for_status()
            data = await response.json()
            tasks: list[dict[str, Any]] = data["tasks"]
            return tasks

    async def wait_tasks(self, done: Callable[[list[dict[str, Any]]], bool],
                         timeout: float = 240) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        last: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            try:
                last = await self.tasks()
            except aiohttp.ClientError:
                pass
            else:
                if done(last):
                    return last
            await asyncio.sleep(0.5)
        states = {t["source"]: (t["release"], t["state"]) for t in last}
        raise AssertionError(f"the farm did not get there in {timeout}s: {states}\n"
                             f"{self.logs()}")

    def index(self) -> dict[str, Any]:
        path = self.state / "vessel" / "vessel" / "repo" / "volatile" / "x86_64" / "current"
        return as_dict(read_index(path / "index.json"))

    def journal(self) -> list[dict[str, Any]]:
        out = subprocess.run([sys.executable, "-m", "daemon.cli", "events", "export",
                              "--journal", str(self.state / "journal" / "journal.sqlite")],
                             capture_output=True, text=True, check=True).stdout
        return [json.loads(line) for line in out.splitlines()]


def all_final(expected: int) -> Callable[[list[dict[str, Any]]], bool]:
    """At least ``expected`` tasks, none of them still moving."""
    moving = {"new", "ready", "building", "publishing"}
    return lambda tasks: len(tasks) >= expected and not any(t["state"] in moving
                                                            for t in tasks)


def latest_by_source(tasks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for task in sorted(tasks, key=lambda t: t["id"]):
        out[task["source"]] = task
    return out


