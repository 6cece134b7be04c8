"""A repository paused for real (``cairn dispatch pause --repository`` against a running
``cairn up``) is a root cause on the overview: its ready tasks are held back by it, with
their count, in the API and on the page, and one click lists them. The builder lever
(drain, enable) goes through the same CLI and API."""

from __future__ import annotations

import re
import subprocess
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.integration.cairn_up import (
    AFTER,
    CAIRN,
    REPO_ROOT,
    CairnUp,
    make_recipes,
    running_farm,
)

pytestmark = [pytest.mark.slow]

#: Recipes waiting for ``slow``'s tool: ready together once it is published.
WAITING = ("after-slow", "after-slow-2", "after-slow-3")


def recipes(root: Path) -> Path:
    """``slow`` (talks for about 8 s) and three recipes that build with what it provides."""
    repo = make_recipes(root, lines=16, pause=0.5)
    for name in WAITING[1:]:
        (repo / name).mkdir()
        (repo / name / "stone.yaml").write_text(AFTER.replace("after-slow", name))
    for args in (["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@localhost",
                                 "commit", "-q", "-m", "more waiting for slow"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)
    return repo


def cairn(farm: CairnUp, *args: str) -> str:
    done = subprocess.run([*CAIRN, *args, "--summit", farm.url, "--token", farm.token()],
                          cwd=REPO_ROOT, capture_output=True, text=True, check=False,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def by_source(farm: CairnUp) -> dict[str, dict[str, Any]]:
    return {t["source"]: t for t in farm.get("/api/v1/tasks?limit=500")["tasks"]}


def test_a_paused_repository_is_a_root_cause_with_its_count(tmp_path: Path) -> None:
    with running_farm(tmp_path, recipes(tmp_path)) as farm:
        farm.wait_for("slow building", lambda: by_source(farm).get("slow", {}).get(
            "state") == "building")
        [repository] = [r["name"] for r in farm.get("/api/v1/repositories")["repositories"]]
        said = cairn(farm, "dispatch", "pause", "--repository", repository)
        assert repository in said
        # slow finishes (a pause stops nothing running); what waited for it is now ready,
        # and stays so: nothing new starts in a paused repository.
        farm.wait_for("the three ready", lambda: all(
            by_source(farm).get(s, {}).get("state") == "ready" for s in WAITING), timeout=90)
        assert by_source(farm)["slow"]["state"] == "completed"
        why = f"dispatch is paused for repository {repository}"
        overview = farm.get("/api/v1/overview")
        [cause] = overview["root_causes"]
        assert (cause["kind"], cause["repository"], cause["count"], cause["text"]) == (
            "paused", repository, 3, f"{why}: blocks 3 tasks")
        assert all(t["waiting"] == why for s, t in by_source(farm).items() if s in WAITING)
        held = farm.get(f"/api/v1/tasks?cause={quote(cause['key'])}")["tasks"]
        assert sorted(t["source"] for t in held) == sorted(WAITING)
        with urllib.request.urlopen(farm.url + "/", timeout=10) as response:
            page = response.read().decode()
        assert f'data-cause="{cause["key"]}" data-count="3"' in page
        assert re.search(rf'<span class="what">{re.escape(why)}:</span>\s*<a class="held"'
                         r'[^>]*>blocks 3 tasks</a>', page), page
        # Resumed, the three build, and nothing is held back any more.
        cairn(farm, "dispatch", "resume", "--repository", repository)
        farm.wait_for("everything built", lambda: {
            t["state"] for t in by_source(farm).values()} == {"completed"}, timeout=120)
        assert farm.get("/api/v1/overview")["root_causes"] == []
        # The other lever, through the same CLI and API: drain the builder, enable it again.
        [builder] = [b["builder"] for b in farm.get("/api/v1/builders")["builders"]]
        assert f"drained builders: {builder}" in cairn(farm, "builders", "drain", builder)
        assert farm.get("/api/v1/dispatch")["drained"] == [builder]
        assert "drained" not in cairn(farm, "builders", "enable", builder)
        assert farm.get("/api/v1/dispatch") == {"paused": False, "paused_repositories": [],
                                                "drained": []}
