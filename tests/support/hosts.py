"""Hosts on one machine: network namespaces on a bridge, each with an address of its own.

A :class:`Network` is a Linux bridge in the root namespace (address ``.1``: the test itself,
like an operator's workstation) and :class:`Host` namespaces attached to it by veth pairs
(``.10`` and up). A process started in a host sees only that host's interfaces: its
``127.0.0.1`` is its own, so a service that assumes loopback across hosts fails as it would
on separate machines. :meth:`Network.firewall` narrows what a host may reach further (a
builder: the brokers, MQTT and vessel's repository; nothing else), with nftables inside the
namespace. :meth:`Host.cut` takes a host's link down (a partition) and :meth:`Host.restore`
brings it back.

Everything is named with a per-network tag and recorded in a state file with the owner's
pid; :func:`sweep_stale` removes what a killed test run left behind (only runs whose owner
is dead), and :meth:`Network.close` removes processes (by pid), namespaces, links and the
bridge of a network, also after a failed test.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.process import Child

STATE_DIR = Path("/run/cairn-test-hosts")


class HostsUnavailable(RuntimeError):
    """Network namespaces cannot be made here (not root, no ``ip``, no nftables)."""


def hosts_unavailable() -> str | None:
    """Why this machine cannot make test hosts, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2 (ip) is not installed"
    if shutil.which("nft") is None:
        return "nftables (nft) is not installed (apt-get install nftables)"
    return None


def _run(*argv: str, check: bool = True, netns: str | None = None,
         stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    if netns is not None:
        argv = ("ip", "netns", "exec", netns, *argv)
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=60,
                          check=False, input=stdin)
    if check and done.returncode != 0:
        raise HostsUnavailable(f"{' '.join(argv)} failed: {done.stderr.strip()}")
    return done


@dataclass(frozen=True)
class Endpoint:
    """A TCP service a host may be allowed to reach: an address and a port."""

    address: str
    port: int


@dataclass
class Host:
    """One namespace: ``address`` on the bridge, ``127.0.0.1`` of its own."""

    name: str
    netns: str
    address: str
    #: The veth end in the root namespace (on the bridge); down = the host is cut off.
    link: str
    network: Network = field(repr=False)
    children: list[Child] = field(default_factory=list, repr=False)

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a command in this host and wait for it."""
        return _run(*argv, check=check, netns=self.netns)

    def spawn(self, name: str, argv: Sequence[str], *, log: Path,
              env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Child:
        """Start a long-running process in this host; it is stopped by pid at close."""
        child = Child(name, argv, log=log, env=env, netns=self.netns, cwd=cwd).start()
        self.children.append(child)
        self.network.record()
        return child

    def cut(self) -> None:
        """Take this host's link down: no packet in or out until :meth:`restore`."""
        _run("ip", "link", "set", self.link, "down")

    def restore(self) -> None:
        _run("ip", "link", "set", self.link, "up")

    @property
    def is_cut(self) -> bool:
        done = _run("ip", "-j", "link", "show", self.link)
        return "UP" not in json.loads(done.stdout)[0].get("flags", [])

    def stop_children(self) -> None:
        for child in reversed(self.children):
            child.stop(timeout=15)


@dataclass
class Network:
    """A bridge and the hosts on it (see the module docstring)."""

    tag: str
    subnet: ipaddress.IPv4Network
    hosts: dict[str, Host] = field(default_factory=dict)
    bridge: str = ""
    _next: int = 10

    @classmethod
    def create(cls) -> Network:
        reason = hosts_unavailable()
        if reason is not None:
            raise HostsUnavailable(reason)
        sweep_stale()
        tag = secrets.token_hex(3)
        network = cls(tag=tag, subnet=_free_subnet(), bridge=f"cbr{tag}")
        network.record()
        try:
            _run("ip", "link", "add", network.bridge, "type", "bridge", "forward_delay", "0")
            _run("ip", "addr", "add", f"{network.gateway}/{network.subnet.prefixlen}",
                 "dev", network.bridge)
            _run("ip", "link", "set", network.bridge, "up")
        except HostsUnavailable:
            network.close()
            raise
        return network

    @property
    def gateway(self) -> str:
        """The root namespace's address on the bridge: where the test itself is."""
        return str(self.subnet.network_address + 1)

    def add_host(self, name: str) -> Host:
        number = self._next
        self._next += 1
        address = str(self.subnet.network_address + number)
        netns = f"cairn-{self.tag}-{name}"
        link = f"cv{self.tag}{number}"
        peer = f"cp{self.tag}{number}"
        host = Host(name, netns, address, link, self)
        self.hosts[name] = host
        self.record()
        _run("ip", "netns", "add", netns)
        _run("ip", "link", "add", link, "type", "veth", "peer", "name", peer)
        _run("ip", "link", "set", peer, "netns", netns)
        _run("ip", "link", "set", link, "master", self.bridge)
        _run("ip", "link", "set", link, "up")
        _run("ip", "link", "set", "lo", "up", netns=netns)
        _run("ip", "link", "set", peer, "name", "eth0", netns=netns)
        _run("ip", "addr", "add", f"{address}/{self.subnet.prefixlen}", "dev", "eth0",
             netns=netns)
        _run("ip", "link", "set", "eth0", "up", netns=netns)
        return host

    def firewall(self, host: Host, *, reach: Iterable[Endpoint],
                 serve: Iterable[tuple[str, int]] = ()) -> None:
        """Let ``host`` open connections only to ``reach`` and accept them only on ``serve``
        (``(from_address, port)``); the test (the gateway) may still open connections to the
        host, and the host's own loopback is untouched. Anything else is rejected, so a service that
        tries a wrong address fails at once instead of hanging."""
        out = [f"ip daddr {e.address} tcp dport {e.port} accept" for e in reach]
        into = [f"ip saddr {source} tcp dport {port} accept" for source, port in serve]
        # Declaring then deleting the table first makes this replace an earlier call's rules.
        rules = f"""
table inet cairn_host
delete table inet cairn_host
table inet cairn_host {{
  chain output {{
    type filter hook output priority 0; policy drop;
    oif "lo" accept
    ct state established,related accept
    {chr(10).join(out)}
    meta l4proto tcp reject with tcp reset
    reject
  }}
  chain input {{
    type filter hook input priority 0; policy drop;
    iif "lo" accept
    ct state established,related accept
    ip saddr {self.gateway} accept
    {chr(10).join(into)}
    meta l4proto tcp reject with tcp reset
    reject
  }}
}}
"""
        _run("nft", "-f", "-", netns=host.netns, stdin=rules)

    # -- bookkeeping and cleanup ------------------------------------------------------
    def _state_file(self) -> Path:
        return STATE_DIR / f"{self.tag}.json"

    def record(self) -> None:
        """Write what this network owns, so a later run can clean up if this one is killed."""
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        pids = [c.pid for h in self.hosts.values() for c in h.children if c.popen]
        self._state_file().write_text(json.dumps({
            "owner": os.getpid(), "bridge": self.bridge,
            "netns": [h.netns for h in self.hosts.values()], "pids": pids,
        }))

    def close(self) -> None:
        """Stop every process (by pid), delete namespaces (their veths go with them), the
        root-side links and the bridge."""
        for host in self.hosts.values():
            host.stop_children()
        _remove(self.bridge, [h.netns for h in self.hosts.values()],
                [h.link for h in self.hosts.values()])
        with contextlib.suppress(FileNotFoundError):
            self._state_file().unlink()


def _remove(bridge: str, namespaces: Sequence[str], links: Sequence[str] = ()) -> None:
    for netns in namespaces:
        _run("ip", "netns", "delete", netns, check=False)
    for link in links:
        _run("ip", "link", "delete", link, check=False)
    if bridge:
        _run("ip", "link", "delete", bridge, check=False)


def sweep_stale() -> None:
    """Remove the networks of test runs whose owner process is gone (a killed pytest)."""
    if not STATE_DIR.is_dir():
        return
    for state in STATE_DIR.glob("*.json"):
        try:
            record = json.loads(state.read_text())
        except (OSError, ValueError):
            continue
        if _alive(int(record.get("owner", 0))):
            continue
        for pid in record.get("pids", []):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(pid), signal.SIGKILL)
        _remove(record.get("bridge", ""), record.get("netns", []))
        with contextlib.suppress(FileNotFoundError):
            state.unlink()


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 in 10.200.0.0/13 that no interface or route of this machine uses."""
    used = _run("ip", "-j", "route", "show", "table", "all").stdout
    taken = [ipaddress.ip_network(r["dst"], strict=False) for r in json.loads(used or "[]")
             if "/" in r.get("dst", "") or r.get("dst", "").count(".") == 3]
    for _ in range(200):
        candidate = ipaddress.IPv4Network(
            f"10.{random.randrange(200, 208)}.{random.randrange(0, 256)}.0/24")
        if not any(candidate.overlaps(t) for t in taken if t.version == 4):
            return candidate
    raise HostsUnavailable("no free /24 in 10.200.0.0/13")
