"""The dashboard in a real browser (Playwright driving Debian's chromium) while a real
``cairn up`` builds: the running task's log lines appear live and the task turns completed,
both without reloading the page. Screenshots of the overview and a task page are saved to
``$CAIRN_SCREENSHOTS`` (or the test's tmp directory) and their paths printed."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.integration.cairn_up import make_recipes, running_farm

pytestmark = [pytest.mark.slow]

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def chromium() -> str:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.skip("Debian's chromium is not installed (apt-get install chromium); the "
                "browser test drives it through Playwright")


def screenshots_dir(tmp_path: Path) -> Path:
    where = Path(os.environ.get("CAIRN_SCREENSHOTS") or tmp_path / "screenshots")
    where.mkdir(parents=True, exist_ok=True)
    return where


def max_seq(page: Any) -> int:
    seqs = page.eval_on_selector_all("#log .line", "els => els.map(e => Number(e.dataset.seq))")
    return max(seqs, default=-1)


def test_dashboard_follows_a_build_live(tmp_path: Path) -> None:
    executable = chromium()
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="the playwright package is not installed")
    shots = screenshots_dir(tmp_path)
    recipes = make_recipes(tmp_path, lines=16, pause=0.5)
    with running_farm(tmp_path, recipes) as farm, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(farm.url + "/")
            assert page.title().startswith("Overview")
            # The builder row names the slow task as soon as it starts (live: the page may
            # well have been loaded before the build began).
            running = page.locator('#builders a[href^="/tasks/"]', has_text="slow").first
            running.wait_for(timeout=60_000)
            page.locator(".live.on").wait_for(timeout=10_000)
            assert page.locator('[data-count="building"]').inner_text() == "1"
            overview = shots / "overview.png"
            page.screenshot(path=str(overview), full_page=True)
            print(f"screenshot: {overview}")
            queue = browser.new_page(viewport={"width": 1280, "height": 600})
            queue.goto(farm.url + "/queue")
            # after-slow waits for slow: the graph has both, and an edge between them.
            assert queue.locator(".graph .node").count() == 2
            assert queue.locator(".graph .edge").count() == 1
            queue_shot = shots / "queue.png"
            queue.screenshot(path=str(queue_shot), full_page=True)
            print(f"screenshot: {queue_shot}")
            queue.close()

            running.click()
            page.wait_for_url(re.compile(r"/tasks/\d+$"))
            task_id = int(page.url.rsplit("/", 1)[1])
            assert farm.get(f"/api/v1/tasks/{task_id}")["source"] == "slow"
            page.evaluate("window.__notReloaded = true")
            first = max_seq(page)
            # A line the server did not render: it came over the event stream.
            page.wait_for_function(
                "n => [...document.querySelectorAll('#log .line')]"
                ".some(e => Number(e.dataset.seq) > n)", arg=first + 2, timeout=30_000)
            assert "slow step" in page.locator("#log").inner_text()
            live_shot = shots / "task-building.png"
            page.screenshot(path=str(live_shot), full_page=True)
            print(f"screenshot: {live_shot}")

            page.locator("#task-state .badge", has_text="completed").wait_for(timeout=60_000)
            assert page.evaluate("window.__notReloaded") is True
            log_text = page.locator("#log").inner_text()
            assert "slow step 16 of 16" in log_text
            assert farm.get(f"/api/v1/tasks/{task_id}")["state"] == "completed"
            # The timeline grew live too, up to the completion.
            assert page.locator("#timeline tr", has_text="completed").count() >= 1
            task_shot = shots / "task.png"
            page.screenshot(path=str(task_shot), full_page=True)
            print(f"screenshot: {task_shot}")

            phone = browser.new_page(viewport={"width": 390, "height": 844})
            phone.goto(farm.url + f"/tasks/{task_id}")
            width = phone.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"the task page scrolls sideways on a phone ({width}px)"
            phone_shot = shots / "task-phone.png"
            phone.screenshot(path=str(phone_shot), full_page=True)
            print(f"screenshot: {phone_shot}")
        finally:
            browser.close()
