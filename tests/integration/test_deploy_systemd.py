"""deploy/systemd and deploy/systemd-run: systemd accepts every unit, and the systemd-run
scripts start each daemon with exactly its unit's properties.

``systemd-analyze verify`` checks that ExecStart's program exists and is executable; the
units start ``/usr/bin/env cairn``, found on the service manager's PATH (/usr/local/bin
included, where deploy/README.md installs it), so the units verify as shipped.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
DAEMONS = {"summit": "cairn-summit.service", "vessel": "cairn-vessel.service",
           "journal": "cairn-journal.service", "avalanche": "cairn-avalanche@.service"}


def parse_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Sections of a unit file as (key, value) lists: keys may repeat, order matters."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = ""
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = line.strip("[]")
            sections[current] = []
            continue
        key, _, value = line.partition("=")
        sections[current].append((key, value))
    return sections


def test_the_four_units_exist() -> None:
    assert {u.name for u in UNITS} == set(DAEMONS.values())


def test_systemd_analyze_verify_accepts_every_unit() -> None:
    """Exactly the acceptance command: ``systemd-analyze verify deploy/systemd/*.service``."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    for unit in UNITS:
        assert "ExecStart=/usr/bin/env cairn " in unit.read_text(), unit.name
    done = subprocess.run(["systemd-analyze", "verify", *map(str, UNITS)],
                          capture_output=True, text=True, timeout=60, check=False)
    output = (done.stdout + done.stderr).strip()
    assert done.returncode == 0, output
    assert not [line for line in output.splitlines() if "cairn" in line], output


@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_units_are_notify_services_with_watchdog_and_hardening(unit: Path) -> None:
    pairs = parse_unit(unit)["Service"]
    service = dict(pairs)
    for key, value in {"Type": "notify", "NotifyAccess": "main", "Restart": "on-failure",
                       "ProtectSystem": "strict", "NoNewPrivileges": "yes",
                       "PrivateTmp": "yes", "ProtectHome": "yes",
                       "DynamicUser": "yes"}.items():
        assert service.get(key) == value, f"{unit.name}: {key}"
    assert service["WatchdogSec"] and service["StateDirectory"].startswith("cairn/")
    filters = [v for k, v in pairs if k == "SystemCallFilter"]
    assert filters[0].startswith("@system-service")
    builder = unit.name.startswith("cairn-avalanche@")
    # What bubblewrap needs: namespaces, an unobstructed /proc, mount(2), rtnetlink.
    for needed_by_bwrap in ("RestrictNamespaces", "ProtectKernelTunables", "ProtectProc"):
        assert (needed_by_bwrap in service) is not builder, f"{unit.name}: {needed_by_bwrap}"
    if builder:
        assert "@mount" in filters[0]
        assert "AF_NETLINK" in service["RestrictAddressFamilies"]


def _printed(*args: str) -> list[str]:
    done = subprocess.run([str(DEPLOY / "systemd-run" / "cairn-run"), *args, "--print"],
                          capture_output=True, text=True, timeout=30, check=True)
    return shlex.split(done.stdout)


@pytest.mark.parametrize("daemon", sorted(DAEMONS))
def test_systemd_run_script_passes_every_service_property(daemon: str) -> None:
    instance = ["b-7"] if daemon == "avalanche" else []
    command = _printed(daemon, *instance)
    assert command[0] == "systemd-run"
    unit_name = "cairn-avalanche@b-7" if instance else f"cairn-{daemon}"
    assert command[1] == f"--unit={unit_name}"
    separator = command.index("--")
    properties = [command[i + 1] for i in range(separator) if command[i] == "-p"]
    unit = parse_unit(DEPLOY / "systemd" / DAEMONS[daemon])
    expected = [f"{k}={v}" for k, v in unit["Service"] if k != "ExecStart"]
    expected = [e.replace("%i", "b-7").replace("%S", "/var/lib") for e in expected]
    assert [p for p in properties if not p.startswith(_UNIT_KEYS)] == expected
    exec_start = dict(unit["Service"])["ExecStart"].replace("%i", "b-7")
    assert command[separator + 1:] == exec_start.split()
    assert not [p for p in properties if "%" in p]
    assert f"Description={dict(unit['Unit'])['Description'].replace('%i', 'b-7')}" in properties


_UNIT_KEYS = ("Description=", "Wants=", "After=", "Requires=", "StartLimitIntervalSec=",
              "StartLimitBurst=")


def test_systemd_run_script_refuses_a_builder_without_a_name() -> None:
    done = subprocess.run([str(DEPLOY / "systemd-run" / "cairn-run-avalanche")],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2 and "builder name" in done.stderr


def test_why_builders_keep_proc_unobstructed() -> None:
    """ProtectKernelTunables= over-mounts /proc/sys read-only; with such an over-mount the
    kernel refuses bwrap's fresh /proc ("mount_too_revealing"). Reproduced with unshare(1)
    (needs root for the mount), next to the same sandbox succeeding without it."""
    if os.geteuid() != 0 or shutil.which("bwrap") is None or shutil.which("unshare") is None:
        pytest.skip("needs root (to over-mount /proc/sys in a private namespace) and bwrap")
    sandbox = "bwrap --ro-bind / / --proc /proc --dev /dev --unshare-all true"
    plain = subprocess.run(["unshare", "-m", "sh", "-c", sandbox], capture_output=True,
                           text=True, timeout=60, check=False)
    if plain.returncode != 0:
        pytest.skip(f"bwrap does not work on this host at all: {plain.stderr.strip()}")
    hidden = subprocess.run(
        ["unshare", "-m", "sh", "-c",
         f"mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys && {sandbox}"],
        capture_output=True, text=True, timeout=60, check=False)
    assert hidden.returncode != 0 and "proc" in hidden.stderr
