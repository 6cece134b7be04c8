"""The two farms of the mass-rebuild benchmark, behind one small interface.

* :class:`EmbeddedBench`: ``cairn up``'s :func:`daemon.embedded.start_farm` — journal, vessel,
  summit and the builders in this process on the embedded broker. Summit cannot be told apart from
  the others there, so its CPU is this process's ``time.process_time()`` (an upper bound).
* :class:`ProcessBench`: on RabbitMQ, in a fresh vhost (deleted afterwards) of the broker at
  ``--broker`` (:class:`SystemBroker`, through ``rabbitmqctl``) or of a private node or
  three-node cluster the benchmark starts itself (:class:`PrivateBroker`); journal, vessel
  and summit each ``python -m daemon.cli <service>`` configured through ``CAIRN_*``
  variables (every node's address in ``CAIRN_BUS_URL``), the builders together in this
  process. Summit's CPU is the utime + stime of its own process from ``/proc/<pid>/stat``.

Both are watched the same way: summit's SQLite database read-only (tasks, the commit it has
planned, its outbox), which is what its API would serve, without depending on the API.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from daemon.avalanche.checkout import ensure_commit
from daemon.avalanche.config import AvalancheConfig, SandboxMode
from daemon.avalanche.daemon import AvalancheDaemon, AvalancheDaemonConfig, AvalancheSection
from daemon.embedded import EmbeddedFarm, UpOptions, start_farm, stop_farm
from daemon.runtime import BusSection, Health, MqttSection, StateSection
from events.errors import CairnError
from tests.support.rabbitmq import RabbitCluster

REPO = Path(__file__).resolve().parents[1]
MOVING = ("new", "ready", "building", "publishing")


class FarmError(CairnError):
    """The benchmark's farm could not be started or did not get where it should."""


@dataclass(frozen=True)
class Snapshot:
    """What summit's database says right now."""

    planned: str | None
    states: dict[str, int]
    outbox: int

    def idle_at(self, commit: str) -> bool:
        """Planned ``commit``, every task final, nothing left to send."""
        return (self.planned == commit and sum(self.states.values()) > 0
                and not any(self.states.get(s) for s in MOVING) and self.outbox == 0)


def snapshot(summit_db: Path, repository: str = "recipes") -> Snapshot:
    """Read summit's state without writing (WAL lets a reader in beside the writer)."""
    if not summit_db.exists():
        return Snapshot(None, {}, 0)
    conn = sqlite3.connect(f"file:{summit_db}?mode=ro", uri=True, timeout=5)
    try:
        try:
            row = conn.execute("SELECT commit_id FROM planned WHERE repository = ?",
                               (repository,)).fetchone()
            states = dict(conn.execute("SELECT state, count(*) FROM tasks GROUP BY state"))
            outbox = conn.execute("SELECT count(*) FROM cairn_outbox").fetchone()[0]
        except sqlite3.OperationalError:  # not migrated yet
            return Snapshot(None, {}, 0)
    finally:
        conn.close()
    return Snapshot(row[0] if row else None, states, int(outbox))


def unfinished(summit_db: Path) -> list[dict[str, Any]]:
    """Tasks that did not complete, with why (blocked_by / failure)."""
    conn = sqlite3.connect(f"file:{summit_db}?mode=ro", uri=True, timeout=5)
    try:
        rows = conn.execute(
            "SELECT task_id, source, release, state, blocked_by, failure FROM tasks "
            "WHERE state != 'completed' ORDER BY source").fetchall()
    finally:
        conn.close()
    return [{"id": r[0], "source": r[1], "release": r[2], "state": r[3],
             "blocked_by": json.loads(r[4]), "failure": r[5]} for r in rows]


class BenchFarm(Protocol):
    """What the benchmark needs from a running farm."""

    cpu_basis: str
    #: The key of :meth:`cpu_seconds` that stands for summit.
    summit_cpu_key: str

    @property
    def summit_db(self) -> Path: ...

    @property
    def journal_db(self) -> Path: ...

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds so far: ``summit`` (see ``cpu_basis``) and each other part measured."""
        ...

    def builder_configs(self) -> list[AvalancheConfig]: ...

    async def refresh(self) -> None: ...

    async def stop(self) -> None: ...


class EmbeddedBench:
    """Everything in this process on the embedded broker (``cairn up``)."""

    cpu_basis = ("time.process_time() of the one embedded process (journal, vessel, summit "
                 "and every builder together): an upper bound of summit's share")
    summit_cpu_key = "all services (one process)"

    def __init__(self, state: Path, repo: Path, builders: int) -> None:
        self.state = state
        self.options = UpOptions(state=state, recipes=str(repo), builders=builders,
                                 backend="noop", port=0, poll_interval=3600.0)
        self.farm: EmbeddedFarm | None = None

    @property
    def summit_db(self) -> Path:
        return self.state / "summit" / "summit.sqlite"

    @property
    def journal_db(self) -> Path:
        return self.state / "journal.sqlite"

    async def start(self) -> None:
        self.farm = await start_farm(self.options)

    def cpu_seconds(self) -> dict[str, float]:
        return {self.summit_cpu_key: time.process_time()}

    def builder_configs(self) -> list[AvalancheConfig]:
        return [b.core for b in self.farm.builders] if self.farm else []

    async def refresh(self) -> None:
        assert self.farm is not None and self.farm.summit.service is not None
        self.farm.summit.service.watcher.refresh("recipes")

    async def stop(self) -> None:
        if self.farm is not None:
            await stop_farm(self.farm)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rabbitmqctl(*args: str) -> str:
    done = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=120,
                          check=False)
    if done.returncode != 0:
        raise FarmError(f"rabbitmqctl {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


class BrokerAdmin(Protocol):
    """What the farm needs to administer its broker: vhosts, consumers, addresses."""

    def add_vhost(self, vhost: str) -> None: ...

    def delete_vhost(self, vhost: str) -> None: ...

    def list_queues(self, vhost: str) -> str:
        """``name consumers`` per line."""
        ...

    def urls(self, vhost: str) -> list[str]: ...


class SystemBroker:
    """The RabbitMQ at ``--broker``, administered with the system's ``rabbitmqctl``."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def add_vhost(self, vhost: str) -> None:
        rabbitmqctl("await_startup")  # another user may be restarting the broker
        rabbitmqctl("add_vhost", vhost)
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")

    def delete_vhost(self, vhost: str) -> None:
        rabbitmqctl("await_startup")
        rabbitmqctl("delete_vhost", vhost)

    def list_queues(self, vhost: str) -> str:
        return rabbitmqctl("list_queues", "-p", vhost, "-q", "name", "consumers")

    def urls(self, vhost: str) -> list[str]:
        return [f"{self.url}/{vhost}"]


class PrivateBroker:
    """A private node or cluster (``tests/support/rabbitmq.py``) this process started."""

    def __init__(self, cluster: RabbitCluster) -> None:
        self.cluster = cluster

    def add_vhost(self, vhost: str) -> None:
        self.cluster.add_vhost(vhost)

    def delete_vhost(self, vhost: str) -> None:
        self.cluster.any_running().ctl("delete_vhost", vhost)

    def list_queues(self, vhost: str) -> str:
        return self.cluster.any_running().ctl("list_queues", "-p", vhost, "-q", "name",
                                              "consumers").stdout

    def urls(self, vhost: str) -> list[str]:
        return self.cluster.urls(vhost)


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of one process (not its children), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ProcessBench:
    """Journal, vessel and summit as their own processes on RabbitMQ; builders in this one."""

    cpu_basis = "utime+stime of the summit process from /proc/<pid>/stat (children excluded)"
    summit_cpu_key = "summit"

    def __init__(self, state: Path, repo: Path, builders: int, broker: str | BrokerAdmin,
                 log_level: str = "warning") -> None:
        self.state = state
        self.log_level = log_level
        self.repo = repo
        self.builder_count = builders
        self.vhost = f"cairn-bench-{uuid.uuid4().hex[:10]}"
        self.broker = SystemBroker(broker) if isinstance(broker, str) else broker
        self.bus_url = ",".join(self.broker.urls(self.vhost))
        self.summit_port, self.vessel_port = free_port(), free_port()
        self.token = uuid.uuid4().hex
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.builders: list[AvalancheDaemon] = []
        self._vhost_made = False

    @property
    def summit_db(self) -> Path:
        return self.state / "summit" / "summit" / "summit.sqlite"

    @property
    def journal_db(self) -> Path:
        return self.state / "journal" / "journal.sqlite"

    @property
    def vessel_state(self) -> Path:
        """Where ``cairn vessel`` keeps its repository (``<CAIRN_STATE_DIR>/vessel``)."""
        return self.state / "vessel" / "vessel"

    def _spawn(self, name: str, **extra: str) -> None:
        (self.state / name).mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "CAIRN_BUS_URL": self.bus_url, "CAIRN_MQTT_URL": "memory://",
               "CAIRN_STATE_DIR": str(self.state / name), "CAIRN_LOG_LEVEL": self.log_level,
               "CAIRN_BUS_PUBLISH_TIMEOUT": "30", "PYTHONPATH": str(REPO), **extra}
        with (self.state / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "daemon.cli", name], env=env, cwd=REPO,
                stdout=log, stderr=subprocess.STDOUT)

    async def start(self) -> None:
        self.broker.add_vhost(self.vhost)
        self._vhost_made = True
        self._spawn("journal")
        self._spawn("vessel", CAIRN_VESSEL_LISTEN_PORT=str(self.vessel_port),
                    CAIRN_VESSEL_VERIFY_PROVIDES="false")  # noop builders: empty packages
        await self._consumed(["cairn.journal", "cairn.vessel"])
        repos = json.dumps([{"name": "recipes", "url": str(self.repo), "branch": "main"}])
        self._spawn("summit", CAIRN_SUMMIT_LISTEN_PORT=str(self.summit_port),
                    CAIRN_SUMMIT_REPOSITORY_URL=f"http://127.0.0.1:{self.vessel_port}",
                    CAIRN_SUMMIT_POLL_INTERVAL="3600", CAIRN_SUMMIT_REPOSITORIES=repos,
                    CAIRN_SUMMIT_ADMIN_TOKEN=self.token)
        await self._consumed(["cairn.summit"])
        for number in range(1, self.builder_count + 1):
            daemon = AvalancheDaemon(AvalancheDaemonConfig(
                bus=BusSection(url=self.bus_url, publish_timeout=30.0),
                mqtt=MqttSection(url="memory://"),
                state=StateSection(dir=str(self.state / "builders")),
                avalanche=AvalancheSection(builder=f"bench-{number}", backend="noop",
                                           sandbox=SandboxMode.AUTO)),
                Health(f"avalanche-{number}"))
            await daemon.start()
            self.builders.append(daemon)

    async def _consumed(self, queues: list[str], timeout: float = 60.0) -> None:
        """Wait until each queue has a consumer: the service is up and subscribed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            out = await asyncio.to_thread(self.broker.list_queues, self.vhost)
            consumers = {p[0]: int(p[1]) for p in (line.split() for line in out.splitlines())
                         if len(p) == 2 and p[1].isdigit()}
            if all(consumers.get(q, 0) > 0 for q in queues):
                return
            await asyncio.sleep(0.3)
        raise FarmError(f"{queues} have no consumer after {timeout:g} s; see {self.state}/*.log")

    def _check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                log = self.state / f"{name}.log"
                tail = log.read_text(errors="replace")[-4000:] if log.exists() else ""
                raise FarmError(f"{name} exited with {process.returncode}; see {log}:\n{tail}")

    def cpu_seconds(self) -> dict[str, float]:
        self._check_alive()
        out = {name: proc_cpu_seconds(p.pid) for name, p in self.processes.items()}
        out["builders (benchmark process)"] = time.process_time()
        return out

    def builder_configs(self) -> list[AvalancheConfig]:
        return [b.core for b in self.builders]

    async def refresh(self) -> None:
        import aiohttp

        url = f"http://127.0.0.1:{self.summit_port}/api/v1/repositories/recipes/refresh"
        async with aiohttp.ClientSession() as session, session.post(
                url, headers={"Authorization": f"Bearer {self.token}"}) as response:
            if response.status != 202:
                raise FarmError(f"summit refused the refresh: {response.status} "
                                f"{await response.text()}")

    async def stop(self) -> None:
        for daemon in self.builders:
            await daemon.stop(10.0)
        for name in ("summit", "vessel", "journal"):
            process = self.processes.get(name)
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    await asyncio.to_thread(process.wait, 30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    await asyncio.to_thread(process.wait, 10)
        if self._vhost_made:
            await asyncio.to_thread(self.broker.delete_vhost, self.vhost)
            self._vhost_made = False


async def warm_builders(farm: BenchFarm, repo: Path, commit: str) -> None:
    """Give the builders' mirror of the recipes (one per state directory, shared) ``commit``,
    as builders that built the published release would have: the rebuild then fetches only
    the bump."""
    await asyncio.gather(*(asyncio.to_thread(ensure_commit, c.mirror_root, str(repo), commit)
                           for c in farm.builder_configs()))
