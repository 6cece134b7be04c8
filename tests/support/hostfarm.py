"""A cairn farm spread over test hosts (:mod:`tests.support.hosts`), as on separate machines.

- ``broker1..N``: a RabbitMQ node each (a cluster when N > 1; quorum queues on every node),
  Mosquitto on ``broker1``;
- ``control``: the recipe repository served by ``git daemon`` (a forge), journal, vessel
  (repository on ``control:8090``) and summit (API on ``control:8080``);
- ``builder1..N``: ``cairn avalanche`` each, behind a firewall that lets it reach only the
  brokers, MQTT, vessel's repository and the forge, and lets only vessel in (artefacts on
  ``:8070``).

Every service is ``python -m daemon.cli <service>`` configured through ``CAIRN_*`` variables
that name other hosts' addresses only: nothing is told ``127.0.0.1``. ``deploy/trial-farm``
runs the same farm for people who want to try it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.hosts import Endpoint, Host, Network
from tests.support.index import as_dict, fetch_index
from tests.support.mosquitto import MosquittoBroker, MqttTls
from tests.support.rabbitmq import Epmd, NodeTls, RabbitCluster, RabbitNode, new_cookie
from tests.support.tls import CertificateAuthority

REPO = Path(__file__).resolve().parents[2]
AMQP_PORT, AMQPS_PORT, DIST_PORT, EPMD_PORT = 5672, 5671, 25672, 4369
MQTT_PORT, MQTTS_PORT = 1883, 8883
GIT_PORT, SUMMIT_PORT, VESSEL_PORT, ARTEFACT_PORT = 9418, 8080, 8090, 8070
MOVING = {"new", "ready", "building", "publishing"}


class FarmFailed(AssertionError):
    """The farm did not get where it should; the message carries the services' logs."""


@dataclass
class HostFarm:
    """See the module docstring. ``tls``: every AMQP and MQTT connection is mutual TLS,
    with plain listeners off."""

    network: Network
    state: Path
    recipes: Path
    builders: int = 2
    brokers: int = 1
    backend: str = "script"
    tls: bool = False
    log_level: str = "info"
    #: AMQP heartbeat (s) every client asks for; None: the client's default (30 s). A
    #: short one makes a partition notice itself quickly, as a test of one wants.
    amqp_heartbeat: int | None = None
    #: Extra ``CAIRN_*`` settings for every builder (e.g. a short ``builder-seen`` period).
    builder_env: dict[str, str] = field(default_factory=dict)
    #: Extra ``CAIRN_*`` settings for summit (e.g. a short retry back-off).
    summit_env: dict[str, str] = field(default_factory=dict)
    control: Host | None = None
    broker_hosts: list[Host] = field(default_factory=list)
    builder_hosts: list[Host] = field(default_factory=list)
    rabbit: RabbitCluster | None = None
    mosquitto: MosquittoBroker | None = None
    ca: CertificateAuthority | None = None
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    _epmds: list[Epmd] = field(default_factory=list)

    # -- addresses -------------------------------------------------------------------
    @property
    def control_host(self) -> Host:
        assert self.control is not None, "the farm is not started"
        return self.control

    @property
    def summit_url(self) -> str:
        return f"http://{self.control_host.address}:{SUMMIT_PORT}"

    @property
    def vessel_url(self) -> str:
        return f"http://{self.control_host.address}:{VESSEL_PORT}"

    @property
    def recipes_url(self) -> str:
        return f"git://{self.control_host.address}/{self.recipes.name}"

    def bus_urls(self, client: str = "") -> list[str]:
        """Every node's address; with TLS, ``client``'s certificate in the query."""
        beat = f"heartbeat={self.amqp_heartbeat}" if self.amqp_heartbeat else ""
        if not self.tls:
            return [f"amqp://guest:guest@{h.address}:{AMQP_PORT}/" + (f"?{beat}" if beat else "")
                    for h in self.broker_hosts]
        query = "&".join(q for q in (self.tls_query(client), beat) if q)
        return [f"amqps://guest:guest@{h.address}:{AMQPS_PORT}/?{query}"
                for h in self.broker_hosts]

    def mqtt_url(self, client: str = "") -> str:
        host = self.broker_hosts[0].address
        if not self.tls:
            return f"mqtt://{host}:{MQTT_PORT}"
        return f"mqtts://{host}:{MQTTS_PORT}?{self.tls_query(client)}"

    def tls_query(self, client: str) -> str:
        """``cafile``, and ``client``'s ``certfile``/``keyfile`` (made on first use)."""
        assert self.ca is not None
        cert = self.ca.issue(client or "operator", self.state / "tls" / (client or "operator"),
                             client=True)
        return f"cafile={self.ca.certfile}&certfile={cert.certfile}&keyfile={cert.keyfile}"

    # -- start -----------------------------------------------------------------------
    def start(self) -> HostFarm:
        self.control = self.network.add_host("control")
        self.broker_hosts = [self.network.add_host(f"broker{n}")
                             for n in range(1, self.brokers + 1)]
        self.builder_hosts = [self.network.add_host(f"builder{n}")
                              for n in range(1, self.builders + 1)]
        if self.tls:
            self.ca = CertificateAuthority.create(self.state / "ca")
        self._start_brokers()
        self._start_forge()
        self._start_control()
        for host in self.builder_hosts:
            self.start_builder(host)
        return self

    def _start_brokers(self) -> None:
        cookie = new_cookie()
        nodes = []
        for host in self.broker_hosts:
            directory = self.state / host.name
            epmd = Epmd(directory, EPMD_PORT, host.address, host.netns).start()
            self._epmds.append(epmd)
            tls = None
            if self.ca is not None:
                cert = self.ca.issue(host.address, directory / "tls")
                tls = NodeTls(AMQPS_PORT, cert.certfile, cert.keyfile, self.ca.certfile)
            nodes.append(RabbitNode("rabbit", directory / "rabbit", epmd, cookie,
                                    host=host.address, port=AMQP_PORT, dist_port=DIST_PORT,
                                    netns=host.netns, tls=tls, plain=tls is None))
        for node in nodes[1:]:
            node.peers = [nodes[0].nodename]
        self.rabbit = RabbitCluster(nodes).start()
        first = self.broker_hosts[0]
        mqtt_tls = None
        if self.ca is not None:
            cert = self.ca.issue(first.address, self.state / "mqtt-tls")
            mqtt_tls = MqttTls(MQTTS_PORT, cert.certfile, cert.keyfile, self.ca.certfile)
        self.mosquitto = MosquittoBroker(self.state / "mosquitto", host=first.address,
                                         port=MQTT_PORT, netns=first.netns, tls=mqtt_tls,
                                         plain=mqtt_tls is None).start()

    def _start_forge(self) -> None:
        self.control_host.spawn(
            "git-daemon", ["git", "daemon", "--reuseaddr", "--export-all",
                           f"--base-path={self.recipes.parent}",
                           f"--listen={self.control_host.address}", f"--port={GIT_PORT}",
                           str(self.recipes.parent)],
            log=self.state / "git-daemon.log")

    def _env(self, name: str, host: Host, **extra: str) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(REPO),
                "CAIRN_BUS_URL": ",".join(self.bus_urls(name)),
                "CAIRN_MQTT_URL": self.mqtt_url(name),
                "CAIRN_STATE_DIR": str(self.state / name), "CAIRN_LOG_LEVEL": self.log_level,
                "CAIRN_LOG_FORMAT": "json", "CAIRN_BUS_PUBLISH_TIMEOUT": "30", **extra}

    def spawn_service(self, name: str, service: str, host: Host, **extra: str) -> None:
        (self.state / name).mkdir(parents=True, exist_ok=True)
        host.spawn(name, [sys.executable, "-m", "daemon.cli", service],
                   env=self._env(name, host, **extra), log=self.state / f"{name}.log",
                   cwd=REPO)

    def _start_control(self) -> None:
        control = self.control_host
        self.spawn_service("journal", "journal", control)
        self.spawn_service("vessel", "vessel", control,
                           CAIRN_VESSEL_LISTEN_PORT=str(VESSEL_PORT))
        self.wait_consumed(["cairn.journal", "cairn.vessel"])
        repos = json.dumps([{"name": "recipes", "url": self.recipes_url, "branch": "main"}])
        self.spawn_service("summit", "summit", control,
                           CAIRN_SUMMIT_LISTEN_HOST=control.address,
                           CAIRN_SUMMIT_LISTEN_PORT=str(SUMMIT_PORT),
                           CAIRN_SUMMIT_REPOSITORY_URL=self.vessel_url,
                           CAIRN_SUMMIT_POLL_INTERVAL="1.0",
                           CAIRN_SUMMIT_REPOSITORIES=repos, CAIRN_SUMMIT_ADMIN_TOKEN=self.token,
                           **self.summit_env)
        self.wait_consumed(["cairn.summit"])

    def builder_reach(self) -> list[Endpoint]:
        """What a builder may connect to: brokers, MQTT, vessel's repository, the forge."""
        port = AMQPS_PORT if self.tls else AMQP_PORT
        mqtt = MQTTS_PORT if self.tls else MQTT_PORT
        return ([Endpoint(h.address, port) for h in self.broker_hosts]
                + [Endpoint(self.broker_hosts[0].address, mqtt),
                   Endpoint(self.control_host.address, VESSEL_PORT),
                   Endpoint(self.control_host.address, GIT_PORT)])

    def start_builder(self, host: Host) -> None:
        self.network.firewall(host, reach=self.builder_reach(),
                              serve=[(self.control_host.address, ARTEFACT_PORT)])
        self.spawn_service(host.name, "avalanche", host, CAIRN_AVALANCHE_BUILDER=host.name,
                           CAIRN_AVALANCHE_BACKEND=self.backend,
                           CAIRN_AVALANCHE_LISTEN_PORT=str(ARTEFACT_PORT),
                           CAIRN_AVALANCHE_JOBS="2", CAIRN_AVALANCHE_TIMEOUT_S="300",
                           **{"CAIRN_AVALANCHE_ENVIRONMENT": "host", **self.builder_env})

    def wait_consumed(self, queues: Sequence[str], timeout: float = 90.0) -> None:
        """Until each queue has a consumer: those services are up and subscribed."""
        assert self.rabbit is not None
        deadline = time.monotonic() + timeout
        consumers: dict[str, int] = {}
        while time.monotonic() < deadline:
            self.check_alive()
            done = self.rabbit.any_running().ctl("list_queues", "name", "consumers", "-q",
                                                 check=False)
            consumers = {p[0]: int(p[1]) for p in (line.split() for line in
                                                  done.stdout.splitlines())
                         if len(p) == 2 and p[1].isdigit()}
            if all(consumers.get(q, 0) > 0 for q in queues):
                return
            time.sleep(0.3)
        raise FarmFailed(f"{queues} have no consumer after {timeout:g} s ({consumers})\n"
                         f"{self.logs()}")

    def check_alive(self) -> None:
        for host in [self.control_host, *self.builder_hosts]:
            for child in host.children:
                if not child.running:
                    raise FarmFailed(f"{child.name} on {host.name} exited with "
                                     f"{child.popen.returncode if child.popen else None}\n"
                                     f"{child.tail()}")

    # -- observe ---------------------------------------------------------------------
    def logs(self) -> str:
        return "\n".join(f"== {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                         for p in sorted(self.state.glob("*.log")))

    async def tasks(self) -> list[dict[str, Any]]:
        async with aiohttp.ClientSession() as session, session.get(
                f"{self.summit_url}/api/v1/tasks?limit=500",
                timeout=aiohttp.ClientTimeout(total=10)) as response:
            response.raise_for_status()
            tasks: list[dict[str, Any]] = (await response.json())["tasks"]
            return tasks

    async def wait_tasks(self, done: Callable[[list[dict[str, Any]]], bool],
                         timeout: float = 300) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        last: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            try:
                last = await self.tasks()
            except (aiohttp.ClientError, TimeoutError):
                pass
            else:
                if done(last):
                    return last
            await asyncio.sleep(0.5)
        states = {t["source"]: t["state"] for t in last}
        raise FarmFailed(f"the farm did not get there in {timeout}s: {states}\n{self.logs()}")

    async def index(self, arch: str = "x86_64") -> dict[str, Any]:
        url = f"{self.vessel_url}/volatile/{arch}/current/index.json"
        return as_dict(await asyncio.to_thread(fetch_index, url))

    def journal(self) -> list[dict[str, Any]]:
        out = subprocess.run([sys.executable, "-m", "daemon.cli", "events", "export",
                              "--journal", str(self.state / "journal" / "journal.sqlite")],
                             capture_output=True, text=True, check=True, cwd=REPO).stdout
        return [json.loads(line) for line in out.splitlines()]

    # -- stop ------------------------------------------------------------------------
    def stop(self) -> None:
        """Services first (by pid, SIGTERM then SIGKILL), then brokers; the network's
        owner removes the hosts."""
        for host in [*self.builder_hosts, self.control] if self.control else []:
            host.stop_children()
        if self.mosquitto is not None:
            self.mosquitto.stop()
        if self.rabbit is not None:
            self.rabbit.stop()
        for epmd in self._epmds:
            epmd.stop()


def all_final(expected: int) -> Callable[[list[dict[str, Any]]], bool]:
    """At least ``expected`` tasks, none of them still moving."""
    return lambda tasks: len(tasks) >= expected and not any(t["state"] in MOVING
                                                            for t in tasks)
