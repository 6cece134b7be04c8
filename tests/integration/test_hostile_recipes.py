"""Hostile recipes block only themselves: an alias bomb, a release beyond 64 bits and a 2 MB
recipe are recipe errors with their file and line, while every sibling recipe is planned, by
``cairn plan`` (a real subprocess, which must not hang) and by a running summit on RabbitMQ
(whose commit once dead-lettered whole)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from daemon.runtime import BusSection, Health, StateSection
from daemon.summit import queries
from daemon.summit.daemon import RepositorySection, SummitDaemon, SummitDaemonConfig, SummitSection
from tests.unit.avalanche.support import add_recipe, make_repo
from tests.unit.summit.test_recipe import BOMB

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = {
    "bomb": BOMB.decode(),
    "overflow": "name: overflow\nversion: 1\nrelease: 9223372036854775808\n",
    "huge": "name: huge\nversion: 1\nrelease: 1\ndescription: |\n" + "  word\n" * 300_000,
}
SIBLINGS = {"libgreet", "greet", "greet-banner", "diamond-a", "diamond-b", "diamond-c",
            "diamond-d"}


@pytest.fixture
def hostile_repo(tmp_path: Path) -> Path:
    repo, _ = make_repo(tmp_path / "recipes")
    for name, text in HOSTILE.items():
        add_recipe(repo, name, text)
    return repo


def _check_errors(errors: list[dict[str, object]]) -> None:
    by_file = {e["file"]: e for e in errors}
    assert set(by_file) == {f"{name}/stone.yaml" for name in HOSTILE}
    assert by_file["bomb/stone.yaml"]["line"] == 4
    assert "anchors" in str(by_file["bomb/stone.yaml"]["message"])
    assert by_file["overflow/stone.yaml"]["line"] == 3
    assert "'release' must be a whole number" in str(by_file["overflow/stone.yaml"]["message"])
    assert "a recipe may have at most" in str(by_file["huge/stone.yaml"]["message"])


def test_cairn_plan_reports_them_and_plans_the_rest(hostile_repo: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "daemon.cli", "plan", str(hostile_repo),
                           "--json"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert {t["source"] for t in report["tasks"]} == SIBLINGS
    _check_errors(report["errors"])


@pytest.mark.rabbitmq
async def test_a_running_summit_plans_the_siblings(hostile_repo: Path, tmp_path: Path,
                                                    private_rabbitmq_url: str) -> None:
    config = SummitDaemonConfig(
        bus=BusSection(url=private_rabbitmq_url), state=StateSection(dir=str(tmp_path / "s")),
        summit=SummitSection(listen_port=0, repository_url="", poll_interval=30,
                             repositories=[RepositorySection(name="r", url=str(hostile_repo))]))
    summit = SummitDaemon(config, Health("summit"))
    await summit.start()
    try:
        service = summit.service
        assert service is not None
        for _ in range(200):
            if {t.source for t in service.scheduler.all_tasks()} == SIBLINGS:
                break
            await asyncio.sleep(0.1)
        assert {t.source for t in service.scheduler.all_tasks()} == SIBLINGS
        _check_errors(await queries.recipe_errors(service.db, "r"))
        # The API answered throughout (the bomb once held it for minutes) and shows them.
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session, \
                session.get(f"{summit.url}/api/v1/repositories") as got:
            assert got.status == 200
            (repo,) = (await got.json())["repositories"]
        _check_errors(repo["recipe_errors"])
    finally:
        await summit.stop(5)
