"""Operators act from the dashboard in a real browser (Playwright driving Debian's chromium)
on a real ``cairn up``: signed out, no button shows and the API answers 401; signed in with
the admin token (an HttpOnly, SameSite=Strict session cookie), the overview pauses and
resumes dispatch, a task page cancels a running build and retries it, and the queue page
raises a waiting task's priority. A session without its CSRF token changes nothing."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.integration.cairn_up import CairnUp, make_recipes, running_farm
from tests.integration.test_dashboard_browser import CHROMIUM_ARGS, chromium

pytestmark = [pytest.mark.slow]


def by_source(farm: CairnUp) -> dict[str, dict[str, Any]]:
    return {t["source"]: t for t in farm.get("/api/v1/tasks")["tasks"]}


def test_sign_in_then_pause_cancel_retry_raise_resume(tmp_path: Path) -> None:
    executable = chromium()
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="the playwright package is not installed")
    recipes = make_recipes(tmp_path, lines=60, pause=0.5)
    with running_farm(tmp_path, recipes) as farm, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            slow = farm.wait_for("slow building", lambda: by_source(farm).get(
                "slow", {}).get("state") == "building" and by_source(farm)["slow"])

            # Signed out: no buttons anywhere, and the API refuses.
            page.goto(farm.url + "/")
            assert page.locator("form.action").count() == 0
            page.goto(f"{farm.url}/tasks/{slow['id']}")
            assert page.locator("#task-actions").count() == 0
            refused = page.request.post(f"{farm.url}/api/v1/tasks/{slow['id']}/cancel")
            assert refused.status == 401
            assert page.request.post(farm.url + "/api/v1/dispatch/pause").status == 401

            # Sign in: a wrong token is refused, the right one comes back to the page.
            page.click("#signin")
            page.fill("input[name=token]", "not the token")
            page.click("form.signin button")
            assert page.locator("#signin-failed").is_visible()
            page.fill("input[name=token]", farm.token())
            page.click("form.signin button")
            page.wait_for_url(re.compile(rf"/tasks/{slow['id']}$"))
            cookie = next(c for c in page.context.cookies() if c["name"] == "cairn_session")
            assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
            # The cookie alone is not enough: a changing call needs the session's CSRF token.
            assert page.request.post(farm.url + "/api/v1/dispatch/pause").status == 401
            assert farm.get("/api/v1/dispatch")["paused"] is False

            # Overview: pause.
            page.goto(farm.url + "/")
            page.click("button.pause")
            page.locator("#paused").wait_for()
            assert farm.get("/api/v1/dispatch")["paused"] is True

            # Task page: cancel the running build, then retry it.
            page.goto(f"{farm.url}/tasks/{slow['id']}")
            page.click("#task-actions button.danger")
            farm.wait_for("slow cancelled", lambda: farm.get(
                f"/api/v1/tasks/{slow['id']}")["state"] == "cancelled")
            page.goto(f"{farm.url}/tasks/{slow['id']}")
            page.click("#task-actions button:text('Retry')")
            page.wait_for_url(re.compile(r"/tasks/\d+$"))
            again = int(page.url.rsplit("/", 1)[1])
            assert again != slow["id"]
            detail = farm.get(f"/api/v1/tasks/{again}")
            assert (detail["source"], detail["state"], detail["reason"]) == (
                "slow", "ready", "retry")
            assert detail["waiting"] == "dispatch is paused for the whole farm"

            # Queue page: raise the waiting task's priority.
            page.goto(farm.url + "/queue")
            row = page.locator(f'#next-up tr[data-task="{again}"]')
            assert row.locator("td.priority").inner_text() == "0"
            row.locator("button.raise").click()
            page.wait_for_url(re.compile(r"/queue$"))
            assert page.locator(f'#next-up tr[data-task="{again}"] td.priority').inner_text() \
                == "10"
            assert farm.get(f"/api/v1/tasks/{again}")["priority"] == 10

            # Overview: resume; the retried task builds.
            page.goto(farm.url + "/")
            page.click("button.resume")
            page.locator("button.pause").wait_for()
            assert page.locator("#paused").count() == 0
            farm.wait_for("the retried slow building", lambda: farm.get(
                f"/api/v1/tasks/{again}")["state"] in ("building", "publishing", "completed"))

            # Signed out again: the buttons are gone.
            page.click("#signout")
            page.goto(f"{farm.url}/tasks/{again}")
            assert page.locator("form.action").count() == 0
        finally:
            browser.close()
