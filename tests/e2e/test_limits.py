"""End to end: a build's limits, configured in summit, carried in task-ready and enforced by
real builder processes on real RabbitMQ: a silent build ends `silent`, a log past its cap
ends `log-limit` (or is cut and goes on, when so configured), a build over the output cap
ends `output-limit`; none of them is retried, and each shows as itself in the API."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.farm import ProcessFarm, all_final, latest_by_source, recipe_repo
from tests.support.mosquitto import MosquittoBroker

pytestmark = [pytest.mark.rabbitmq, pytest.mark.mqtt, pytest.mark.slow,
              pytest.mark.timeout(600)]


def _stone(name: str, build: str, install: str = "mkdir -p $installdir/usr/share/x") -> str:
    return (f"name        : {name}\nversion     : 1.0.0\nrelease     : 1\n"
            f"summary     : limits\nlicense     : MPL-2.0\nbuild       : |\n    {build}\n"
            f"install     : |\n    {install}\n")


CHATTY = "for i in $(seq 1 3000); do echo \"line $i of a chatty build\"; done"
RECIPES = {
    "mute": _stone("mute", "echo starting; sleep 120"),
    "chatty": _stone("chatty", CHATTY + "; sleep 120"),
    "chatty-ok": _stone("chatty-ok", CHATTY),
    "hoard": _stone("hoard", "head -c 3000000 /dev/urandom > hoard.bin",
                    "install -D -m 0644 hoard.bin $installdir/usr/share/hoard/hoard.bin"),
    # No rule names it: its task-ready carries no limits.
    "plain": _stone("plain", "echo nothing to limit"),
}
LIMITS = [
    {"pattern": "mute", "silence_s": 3},
    {"pattern": "chatty*", "log_bytes": 20000},
    {"pattern": "chatty-ok", "log_overflow": "truncate"},
    {"pattern": "hoard", "output_bytes": 1000000},
]


@pytest.fixture
async def farm(tmp_path: Path, private_rabbitmq_url: str,
               private_mosquitto: MosquittoBroker) -> AsyncIterator[ProcessFarm]:
    repo = recipe_repo(tmp_path / "recipes", RECIPES, examples=False)
    running = ProcessFarm(private_rabbitmq_url, repo, tmp_path / "state",
                          mqtt_url=private_mosquitto.url)
    running.start_services(CAIRN_SUMMIT_LIMITS=json.dumps(LIMITS))
    for name in ("builder1", "builder2"):
        running.start_builder(name)
    try:
        yield running
    finally:
        running.stop_all()


async def test_each_limit_ends_its_build_with_its_own_outcome(farm: ProcessFarm) -> None:
    tasks = await farm.wait_tasks(all_final(len(RECIPES)), timeout=400)
    latest = latest_by_source(tasks)
    expected = {"mute": "silent", "chatty": "log-limit", "hoard": "output-limit"}
    for source, outcome in expected.items():
        task = latest[source]
        assert task["state"] == "failed", task
        assert task["failure"].startswith(f"{outcome}: "), task
        assert task["attempt"] == 1, task  # the recipe's to fix: never retried
        history = await _history(farm, source)
        assert [b["outcome"] for b in history] == [outcome]
    assert "printed nothing for 3 s" in latest["mute"]["failure"]
    assert "over the output cap of 1000000 bytes" in latest["hoard"]["failure"]
    # The same log cap, configured to cut the log and go on: the build completes.
    assert latest["chatty-ok"]["state"] == "completed", latest["chatty-ok"]
    (ok,) = await _history(farm, "chatty-ok")
    assert ok["outcome"] == "success" and ok["log_bytes"] < 20000 + 4096
    # The limits came from summit, in task-ready.
    ready = {e["data"]["source"]: e["data"]["limits"] for e in farm.journal()
             if e["type"] == "task-ready"}
    assert ready["mute"]["silence_s"] == 3
    assert ready["chatty-ok"] == {**ready["chatty"], "log_overflow": "truncate"}
    assert ready["plain"] is None
    # The CLI shows each outcome as itself too.
    history = _cli(farm, "tasks", "history", "hoard")
    assert "output-limit" in history and "on builder" in history, history
    # The disk the build took, measured by the builder and kept in the history: its tree
    # held the 3 MB it wrote in its work directory and then its install tree.
    assert " disk " in history, history
    (hoard,) = await _history(farm, "hoard")
    assert hoard["disk_bytes"] >= 3_000_000, hoard
    shown = _cli(farm, "tasks", "show", str(latest["mute"]["id"]))
    assert "failure: silent: " in shown and "build (attempt 1): silent" in shown, shown


def _cli(farm: ProcessFarm, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "daemon.cli", *args, "--summit",
                           farm.summit_url], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


async def _history(farm: ProcessFarm, source: str) -> list[dict[str, Any]]:
    status, body = await farm.call("GET", f"/api/v1/sources/{source}/history")
    assert status == 200, body
    builds: list[dict[str, Any]] = body["builds"]
    return builds
