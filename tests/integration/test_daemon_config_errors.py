"""An operator's mistake stops a daemon with one line naming what to fix, never a traceback:
a port another process holds, a port out of range, a configuration file that is not UTF-8,
a negative poll interval, an arch that is a path (real processes, a real socket held)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _cairn(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "CAIRN_BUS_URL": "memory://",
           "CAIRN_MQTT_URL": "memory://", "CAIRN_STATE_DIR": str(tmp_path / "state")}
    return subprocess.run([sys.executable, "-m", "daemon.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def _one_line_error(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("cairn: error: ")]
    assert len(errors) == 1, done.stderr
    for word in words:
        assert word in errors[0], errors[0]


@pytest.mark.parametrize(("daemon", "section"), [("summit", "summit"), ("vessel", "vessel")])
def test_a_port_in_use_is_one_line(tmp_path: Path, daemon: str, section: str) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        config = tmp_path / "c.toml"
        config.write_text(f"[{section}]\nlisten_host = \"127.0.0.1\"\nlisten_port = {port}\n")
        done = _cairn(tmp_path, daemon, "--config", str(config))
    _one_line_error(done, f"cannot listen on 127.0.0.1:{port}", "in use",
                    f"[{section}] listen_port")


@pytest.mark.parametrize(("text", "words"), [
    (b"[summit]\nlisten_port = 70000\n", ("summit.listen_port", "65535", "70000")),
    (b"[summit]\npoll_interval = -1\n", ("summit.poll_interval", "> 0")),
    (b'[summit]\nadmin_token = "\xff"\n', ("not UTF-8",)),
    (b'[[summit.repositories]]\nname = "r"\nurl = "/srv/r"\narches = ["x86_64/../../x"]\n',
     ("summit.repositories[0].arches[0]", "'x86_64/../../x'")),
])
def test_bad_configuration_is_one_line(tmp_path: Path, text: bytes,
                                       words: tuple[str, ...]) -> None:
    config = tmp_path / "summit.toml"
    config.write_bytes(text)
    _one_line_error(_cairn(tmp_path, "summit", "--config", str(config)), str(config), *words)


@pytest.mark.parametrize(("option", "value"), [("--port", "70000"), ("--port", "-1"),
                                               ("--poll-interval", "-1")])
def test_cairn_up_refuses_bad_numbers(tmp_path: Path, option: str, value: str) -> None:
    done = _cairn(tmp_path, "up", "--state", str(tmp_path / "up"), option, value)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert f"argument {option}" in done.stderr and value in done.stderr
