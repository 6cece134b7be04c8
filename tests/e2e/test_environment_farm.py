"""End to end in a build environment: every service its own OS process on real RabbitMQ and
Mosquitto; the repository names the bundled Debian environment (made by mmdebstrap, pushed
to vessel by digest); two builders that refuse to build on their hosts pull it from vessel
and build every example in it. Every task-ready and build-done names it, so do the index's
packages, and ``cairn channel verify`` (which accepts only packages built in an environment
vessel lists) passes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from daemon.buildenv.cache import CachedEnvironment
from tests.buildenv_cache import cached_environment
from tests.e2e.farm import ProcessFarm, all_final, recipe_repo
from tests.support.mosquitto import MosquittoBroker

pytestmark = [pytest.mark.rabbitmq, pytest.mark.mqtt, pytest.mark.slow,
              pytest.mark.timeout(600),
              pytest.mark.skipif(shutil.which("bwrap") is None,
                                 reason="bubblewrap is not installed")]

EXAMPLES = {"libgreet", "greet", "greet-banner", "diamond-a", "diamond-b", "diamond-c",
            "diamond-d"}


@pytest.fixture
async def farm(tmp_path: Path, private_rabbitmq_url: str, private_mosquitto: MosquittoBroker,
               debian_environment: CachedEnvironment) -> AsyncIterator[ProcessFarm]:
    running = ProcessFarm(private_rabbitmq_url, recipe_repo(tmp_path / "recipes"),
                          tmp_path / "state", mqtt_url=private_mosquitto.url)
    try:
        running.start("journal", "journal")
        running.start("vessel", "vessel", CAIRN_VESSEL_LISTEN_PORT=str(running.vessel_port))
        running.wait_ready("journal")
        running.wait_ready("vessel")
        vessel_state = running.state / "vessel" / "vessel"
        pushed = subprocess.run(
            [sys.executable, "-m", "daemon.cli", "buildenv", "push",
             str(cached_environment().archive), "--state", str(vessel_state)],
            capture_output=True, text=True, timeout=120)
        assert pushed.returncode == 0, pushed.stdout + pushed.stderr
        repos = json.dumps([{"name": "recipes", "url": str(running.repo), "branch": "main",
                             "environment": debian_environment.digest}])
        for name in ("builder1", "builder2"):
            # No "host": these builders build only in an environment.
            running.start_builder(name, CAIRN_AVALANCHE_ENVIRONMENT="",
                                  CAIRN_AVALANCHE_ENVIRONMENT_URL=running.vessel_url,
                                  CAIRN_AVALANCHE_ENVIRONMENT_KEY=str(
                                      vessel_state / "repo" / "minisign.pub"))
        # Both builders are up before summit plans: the first plan's two roots then go one
        # to each (a builder has one slot), and each builder pulls the environment itself.
        # Started after summit, one builder could take every task before the other's first
        # heartbeat reached summit (seen once in CI on a loaded machine).
        running.wait_ready("builder1")
        running.wait_ready("builder2")
        running.start_summit(CAIRN_SUMMIT_REPOSITORIES=repos)
        yield running
    finally:
        running.stop_all()


async def test_examples_build_in_the_environment_on_two_builders(
        farm: ProcessFarm, debian_environment: CachedEnvironment) -> None:
    digest = debian_environment.digest
    tasks = await farm.wait_tasks(all_final(len(EXAMPLES)), timeout=420)
    assert {t["source"] for t in tasks} == EXAMPLES
    assert all(t["state"] == "completed" for t in tasks), tasks
    events = farm.journal()
    ready = [e["data"] for e in events if e["type"] == "task-ready"]
    done = [e["data"] for e in events if e["type"] == "build-done"]
    assert ready and {r["environment"] for r in ready} == {digest}
    assert {d["environment"] for d in done} == {digest}
    assert {d["builder"] for d in done} == {"builder1", "builder2"}, farm.logs()
    packages = farm.index()["packages"]
    assert packages and {p["environment"] for p in packages} == {digest}
    verified = subprocess.run(
        [sys.executable, "-m", "daemon.cli", "channel", "verify", farm.vessel_url,
         "--arch", "x86_64", "--seen-file", str(farm.state / "seen.json")],
        capture_output=True, text=True, timeout=120)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    # The API says which environment built what, and which one the repository names.
    status, detail = await farm.call("GET", f"/api/v1/tasks/{tasks[0]['id']}", token=None)
    assert status == 200 and {b["environment"] for b in detail["builds"]} == {digest}
    status, repo = await farm.call("GET", "/api/v1/repositories/recipes", token=None)
    assert status == 200 and repo["environment"] == digest
