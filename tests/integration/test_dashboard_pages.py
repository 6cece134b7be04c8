"""Every dashboard page renders from a real ``cairn up``, links only local assets, and says
in words what it shows (the browser test covers the live behaviour)."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.integration.cairn_up import make_recipes, running_farm

pytestmark = [pytest.mark.slow]


def fetch(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def test_pages_render_with_local_assets_only(tmp_path: Path) -> None:
    with running_farm(tmp_path, make_recipes(tmp_path, lines=2, pause=0.1)) as farm:
        farm.wait_for("both completed", lambda: farm.get("/api/v1/overview")["counts"][
            "completed"] == 2)
        slow = farm.get("/api/v1/tasks?source=slow")["tasks"][0]["id"]
        pages = {"/": "Blocked, by root cause", "/tasks?state=&q=": "2 tasks",
                 "/tasks?state=completed&q=after": "1 task", f"/tasks/{slow}": "slow step 2",
                 "/queue": "The queue is empty", "/repository": "Generations published"}
        for path, words in pages.items():
            status, kind, html = fetch(farm.url + path)
            assert status == 200 and kind.startswith("text/html"), path
            assert words in html, (path, words)
            for ref in re.findall(r'(?:src|href)="([^"]+)"', html):
                # Local pages and assets; the only absolute URLs are the farm's own
                # (vessel's index and the builder's log).
                assert ref.startswith(("/", "#")) or ref.startswith("http://127.0.0.1:"), ref
        for asset in ("/static/style.css", "/static/live.js", "/static/cairn.svg"):
            assert fetch(farm.url + asset)[0] == 200
        # cairn up here builds on the host: the task page says the build is not hermetic.
        html = fetch(farm.url + f"/tasks/{slow}")[2]
        assert re.search(r'id="task-environment"><strong>not hermetic</strong>', html)
        status, _, html = fetch(farm.url + "/tasks/424242")
        assert status == 404 and "There is no task 424242." in html
        status, _, html = fetch(farm.url + "/tasks?state=bogus")
        assert status == 400 and "unknown state" in html
