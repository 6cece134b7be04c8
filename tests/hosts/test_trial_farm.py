"""``deploy/trial-farm``, the documented way to try a farm of many hosts on one machine, runs
the examples to completion with ``--until-idle`` and leaves no namespace behind."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.fixtures import unavailable
from tests.support.hosts import hosts_unavailable

pytestmark = [pytest.mark.hosts, pytest.mark.rabbitmq, pytest.mark.mqtt, pytest.mark.slow,
              pytest.mark.timeout(600)]

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "trial-farm"


def _namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def test_trial_farm_builds_the_examples_until_idle_and_cleans_up(tmp_path: Path) -> None:
    reason = hosts_unavailable()
    if reason is not None:
        unavailable(f"test hosts cannot be made: {reason}")
    summary = tmp_path / "summary.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--until-idle", "--builders", "2",
                           "--backend", "script", "--state", str(tmp_path / "trial"),
                           "--summary-json", str(summary)],
                          capture_output=True, text=True, timeout=540)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(summary.read_text())
    assert result["completed"] is True and result["tasks"] == {"completed": 7}
    assert "summit (dashboard, API): http://10." in done.stdout
    # Its own namespaces only: other test runs on the machine make theirs meanwhile.
    match = re.search(r"ip netns exec (cairn-[0-9a-f]+)-control", done.stdout)
    assert match is not None, done.stdout
    assert {n for n in _namespaces() if n.startswith(match.group(1) + "-")} == set()
