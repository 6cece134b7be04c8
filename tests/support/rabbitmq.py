"""Private RabbitMQ nodes and clusters for tests that stop, kill or reconfigure a broker.

A :class:`RabbitNode` is a whole broker of its own: node name, AMQP and distribution ports,
data (``RABBITMQ_MNESIA_BASE``) and log (``RABBITMQ_LOG_BASE``) directories, config and
plugins files, Erlang cookie (its own ``HOME``) and epmd (:class:`Epmd`, on a port of its
own). It runs the Erlang VM directly (``rabbitmq-server`` execs it when ``NOTIFY_SOCKET`` is
set), so the pid a node holds is the VM's: ``kill()`` is ``kill -9`` of the broker itself.
Readiness is the broker's own ``READY=1`` on that notify socket, not a guess.

Nothing here touches the system broker, its cookie, its epmd or its files.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.ports import free_port
from tests.support.process import Child


class BrokerStartError(RuntimeError):
    """A private broker did not come up; the message carries the end of its log."""


def rabbitmq_sbin() -> Path | None:
    """The directory of the real ``rabbitmq-server`` script (not Debian's wrapper, which
    switches to the rabbitmq user and its cookie)."""
    found = sorted(glob.glob("/usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin"))
    if found:
        return Path(found[-1])
    return None


def erlang_available() -> str | None:
    """Why private nodes cannot run here, or None when they can."""
    if rabbitmq_sbin() is None:
        return "RabbitMQ's server scripts are not installed (apt-get install rabbitmq-server)"
    if not Path("/usr/bin/epmd").exists() and not any(
            Path(p, "epmd").exists() for p in os.environ.get("PATH", "").split(":")):
        return "epmd (Erlang) is not installed"
    return None


@dataclass
class Epmd:
    """An Erlang port mapper of one's own: nodes and CLI tools given ``ERL_EPMD_PORT`` find
    each other through it and never register with the system broker's epmd."""

    directory: Path
    port: int
    address: str = "127.0.0.1"
    netns: str | None = None
    child: Child | None = None

    def start(self) -> Epmd:
        addresses = "127.0.0.1" if self.address == "127.0.0.1" else f"127.0.0.1,{self.address}"
        self.child = Child(f"epmd-{self.port}", ["epmd", "-port", str(self.port), "-address",
                                                 addresses],
                           log=self.directory / f"epmd-{self.port}.log", netns=self.netns)
        self.child.start()
        deadline = time.monotonic() + 10
        while not _listening(self.address, self.port, self.netns):
            if not self.child.running or time.monotonic() > deadline:
                raise BrokerStartError(f"epmd on port {self.port} did not start: "
                                       f"{self.child.tail()}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop(timeout=5)


def _listening(host: str, port: int, netns: str | None) -> bool:
    if netns is None:
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return True
        except OSError:
            return False
    done = subprocess.run(["ip", "netns", "exec", netns, "bash", "-c",
                           f"exec 3<>/dev/tcp/{host}/{port}"],
                          capture_output=True, timeout=10, check=False)
    return done.returncode == 0


@dataclass(frozen=True)
class NodeTls:
    """A TLS listener: server certificate and key, the CA that signs clients, and whether a
    client without a certificate is refused."""

    port: int
    certfile: Path
    keyfile: Path
    cafile: Path
    require_client_certificate: bool = True


@dataclass
class RabbitNode:
    """One private broker node (see the module docstring).

    ``host`` is the address it listens on and names itself by (long node names: a node on
    10.77.0.11 is ``name@10.77.0.11``, reachable by that name from other hosts); ``plain``
    False leaves only the TLS listener."""

    name: str
    directory: Path
    epmd: Epmd
    cookie: str
    host: str = "127.0.0.1"
    port: int = 0
    dist_port: int = 0
    netns: str | None = None
    tls: NodeTls | None = None
    plain: bool = True
    #: Node names of a cluster this node forms with (``classic_config`` peer discovery).
    peers: Sequence[str] = ()
    child: Child | None = field(default=None, repr=False)
    #: Every pid this node's VM has had (a restart is a new VM).
    pids: list[int] = field(default_factory=list)
    _notify: socket.socket | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.port:
            self.port = free_port(self.host) if self.netns is None else 5672
        if not self.dist_port:
            self.dist_port = free_port(self.host) if self.netns is None else 25672

    @property
    def nodename(self) -> str:
        return f"{self.name}@{self.host}"

    def url(self, vhost: str = "", user: str = "guest", password: str = "guest") -> str:
        return f"amqp://{user}:{password}@{self.host}:{self.port}/{vhost}"

    def tls_url(self, vhost: str = "", user: str = "guest", password: str = "guest") -> str:
        if self.tls is None:
            raise ValueError(f"{self.nodename} has no TLS listener")
        return f"amqps://{user}:{password}@{self.host}:{self.tls.port}/{vhost}"

    @property
    def home(self) -> Path:
        return self.directory / "home"

    @property
    def pid(self) -> int:
        if self.child is None:
            raise RuntimeError(f"{self.nodename} was never started")
        return self.child.pid

    @property
    def running(self) -> bool:
        return self.child is not None and self.child.running

    def _config(self) -> str:
        lines = ["loopback_users = none", "log.console = false", "log.file.level = info",
                 # A test machine's disk is small and shared; never block publishers on it.
                 "disk_free_limit.absolute = 1MB"]
        if self.plain:
            lines.append(f"listeners.tcp.1 = {self.host}:{self.port}")
        else:
            lines.append("listeners.tcp = none")
        if self.tls is not None:
            lines += [
                f"listeners.ssl.1 = {self.host}:{self.tls.port}",
                f"ssl_options.cacertfile = {self.tls.cafile}",
                f"ssl_options.certfile = {self.tls.certfile}",
                f"ssl_options.keyfile = {self.tls.keyfile}",
                "ssl_options.verify = verify_peer",
                "ssl_options.fail_if_no_peer_cert = "
                + ("true" if self.tls.require_client_certificate else "false"),
            ]
        if self.peers:
            lines.append("cluster_formation.peer_discovery_backend = classic_config")
            lines += [f"cluster_formation.classic_config.nodes.{number} = {peer}"
                      for number, peer in enumerate(self.peers, 1)]
        return "\n".join(lines) + "\n"

    def _env(self) -> dict[str, str]:
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "ERL_EPMD_PORT": str(self.epmd.port),
            "RABBITMQ_USE_LONGNAME": "true",
            "RABBITMQ_NODENAME": self.nodename,
            "RABBITMQ_NODE_IP_ADDRESS": self.host,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.directory / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.directory / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.directory / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.directory / "enabled_plugins"),
            # Not /etc/rabbitmq/rabbitmq-env.conf: that names the system node.
            "RABBITMQ_CONF_ENV_FILE": str(self.directory / "rabbitmq-env.conf"),
            "RABBITMQ_CTL_DIST_PORT_MIN": str(self.dist_port + 1),
            "RABBITMQ_CTL_DIST_PORT_MAX": str(self.dist_port + 11),
            "NOTIFY_SOCKET": str(self.directory / "notify"),
        }

    def _prepare(self) -> None:
        for sub in ("mnesia", "log"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        self.home.mkdir(parents=True, exist_ok=True)
        cookie = self.home / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(self.cookie)
            cookie.chmod(0o400)
        (self.directory / "rabbitmq.conf").write_text(self._config())
        (self.directory / "enabled_plugins").write_text("[].\n")
        (self.directory / "rabbitmq-env.conf").write_text("")

    def start(self, timeout: float = 90.0) -> RabbitNode:
        """Start the VM and wait for the broker's ``READY=1``."""
        sbin = rabbitmq_sbin()
        if sbin is None:
            raise BrokerStartError("rabbitmq-server is not installed")
        self._prepare()
        notify = self._open_notify_socket()
        self.child = Child(self.name, [str(sbin / "rabbitmq-server")],
                           log=self.directory / "server.log", env=self._env(),
                           netns=self.netns).start()
        self.pids.append(self.child.pid)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if b"READY=1" in notify.recv(4096):
                    return self
            except TimeoutError:
                pass
            if not self.child.running or time.monotonic() > deadline:
                status = "exited" if not self.child.running else "timed out"
                self.stop(timeout=10)
                raise BrokerStartError(
                    f"RabbitMQ node {self.nodename} {status} before it was ready:\n"
                    f"{self.child.tail()}\n{self.log_tail()}")

    def _open_notify_socket(self) -> socket.socket:
        """The socket the broker reports readiness on; it stays open while the node runs,
        because the broker also reports its shutdown there and fails loudly if it cannot."""
        self._close_notify_socket()
        path = self.directory / "notify"
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(path))
        notify.settimeout(0.5)
        self._notify = notify
        return notify

    def _close_notify_socket(self) -> None:
        if self._notify is not None:
            self._notify.close()
            self._notify = None

    def log_tail(self, chars: int = 3000) -> str:
        path = self.directory / "log" / f"{self.nodename}.log"
        try:
            return path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = 30.0) -> None:
        """A clean shutdown (SIGTERM to the VM); SIGKILL if it takes longer than ``timeout``."""
        if self.child is not None:
            self.child.stop(timeout=timeout)
        self._close_notify_socket()

    def kill(self) -> None:
        """``kill -9`` of the Erlang VM: the node dies with nothing flushed or said."""
        if self.child is not None and self.child.running:
            os.kill(self.child.pid, signal.SIGKILL)
            self.child.kill()
        self._close_notify_socket()

    def ctl(self, *args: str, timeout: float = 60.0, check: bool = True,
            tool: str = "rabbitmqctl") -> subprocess.CompletedProcess[str]:
        """Run a RabbitMQ CLI tool against this node (its cookie, epmd and namespace)."""
        sbin = rabbitmq_sbin()
        assert sbin is not None
        argv = [str(sbin / tool), "--longnames", "-n", self.nodename, *args]
        if self.netns is not None:
            argv = ["ip", "netns", "exec", self.netns, *argv]
        done = subprocess.run(argv, env=self._env() | {"NOTIFY_SOCKET": ""},
                              capture_output=True, text=True, timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)} on {self.nodename} failed "
                               f"({done.returncode}): {done.stderr.strip() or done.stdout}")
        return done

    def add_vhost(self, vhost: str) -> None:
        self.ctl("add_vhost", vhost)
        self.ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")


def new_cookie() -> str:
    return secrets.token_hex(16)


@dataclass
class RabbitCluster:
    """Several :class:`RabbitNode` forming one cluster. The first node starts alone; the
    others then join it through ``classic_config`` peer discovery, all at once."""

    nodes: list[RabbitNode]

    @classmethod
    def on_loopback(cls, directory: Path, epmd: Epmd, size: int = 3,
                    prefix: str = "cairn-c") -> RabbitCluster:
        cookie = new_cookie()
        tag = secrets.token_hex(3)
        names = [f"{prefix}{tag}-{n}" for n in range(1, size + 1)]
        nodes = [RabbitNode(name, directory / name, epmd, cookie) for name in names]
        # The first node forms the cluster alone; the others find it and join.
        for node in nodes[1:]:
            node.peers = [nodes[0].nodename]
        return cls(nodes)

    def start(self, timeout: float = 120.0) -> RabbitCluster:
        first, *rest = self.nodes
        first.start(timeout)
        _start_together(rest, timeout)
        self.wait_formed(timeout)
        return self

    def wait_formed(self, timeout: float = 60.0) -> None:
        """Every node running and a member of one cluster."""
        expected = {node.nodename for node in self.nodes}
        deadline = time.monotonic() + timeout
        running: set[str] = set()
        while time.monotonic() < deadline:
            done = self.any_running().ctl("cluster_status", "--formatter", "json", check=False)
            if done.returncode == 0:
                running = set(json.loads(done.stdout).get("running_nodes", []))
                if running == expected:
                    return
            time.sleep(0.3)
        raise BrokerStartError(f"the cluster did not form: running {sorted(running)}, "
                               f"expected {sorted(expected)}")

    def urls(self, vhost: str = "") -> list[str]:
        return [node.url(vhost) for node in self.nodes]

    def node(self, nodename: str) -> RabbitNode:
        for node in self.nodes:
            if node.nodename == nodename:
                return node
        raise KeyError(nodename)

    def any_running(self) -> RabbitNode:
        for node in self.nodes:
            if node.running:
                return node
        raise RuntimeError("no node of the cluster is running")

    def queue_leader(self, queue: str, vhost: str = "/") -> RabbitNode:
        """The node that holds a quorum queue's leader now."""
        done = self.any_running().ctl("list_queues", "-p", vhost, "name", "leader",
                                      "--no-table-headers", "--quiet")
        for line in done.stdout.splitlines():
            fields = line.split()
            if len(fields) == 2 and fields[0] == queue:
                return self.node(fields[1])
        raise KeyError(f"no queue {queue!r} in vhost {vhost!r}: {done.stdout}")

    def leaders(self, vhost: str = "/") -> dict[str, RabbitNode]:
        """Every quorum queue of a vhost and the node that holds its leader now."""
        done = self.any_running().ctl("list_queues", "-p", vhost, "name", "leader",
                                      "--no-table-headers", "--quiet")
        names = {node.nodename: node for node in self.nodes}
        return {fields[0]: names[fields[1]] for fields in
                (line.split() for line in done.stdout.splitlines())
                if len(fields) == 2 and fields[1] in names}

    def queue_members(self, queue: str, vhost: str = "/") -> set[str]:
        """The nodes that hold a replica of a quorum queue."""
        done = self.any_running().ctl("list_queues", "-p", vhost, "name", "members",
                                      "--no-table-headers", "--quiet")
        for line in done.stdout.splitlines():
            name, _, members = line.partition("\t")
            if name == queue:
                return _node_names(members)
        raise KeyError(f"no queue {queue!r} in vhost {vhost!r}: {done.stdout}")

    def add_vhost(self, vhost: str) -> None:
        self.any_running().add_vhost(vhost)

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()


def _node_names(text: str) -> set[str]:
    """Node names (``name@host``) in a CLI tool's Erlang-term or tabular output."""
    names = set()
    for token in text.replace("[", " ").replace("]", " ").replace(",", " ").split():
        token = token.strip("'\"<>")
        if "@" in token:
            names.add(token)
    return names


def _start_together(nodes: Iterable[RabbitNode], timeout: float) -> None:
    import concurrent.futures

    nodes = list(nodes)
    if not nodes:
        return
    with concurrent.futures.ThreadPoolExecutor(len(nodes)) as pool:
        for future in [pool.submit(node.start, timeout) for node in nodes]:
            future.result()
