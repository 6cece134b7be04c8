"""The pages' view of the planners (root causes, waves, estimates), computed off the
request path: a real summit (SQLite store, a recipe repository in git) plans, a lever is
pulled, and the view says what it shows and how current it is.

When computing a view is quick (this small tree), a request waits for it and sees the
latest decision; when it is slow (forced here: the threshold set to zero, as with 50,000
tasks), a request is answered at once from the previous view, marked not current, while
one refresh shared by every request takes the change in."""

from __future__ import annotations

import asyncio
import gc
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from daemon.summit.gitrepo import RepoConfig
from daemon.summit.service import Summit
from daemon.summit.web import readview
from daemon.summit.web.readview import read_view, views_of
from tests.integration.cairn_up import make_recipes
from tests.support.summitpages import plan_head, served_pages, summit_service


class StillClock:
    """The read view's clock, still unless the test moves it: a view ages by the clock
    alone (its estimates), which would make "current" depend on how long the test took."""

    def __init__(self) -> None:
        self.mono, self.wall = time.monotonic(), time.time()

    def monotonic(self) -> float:
        return self.mono

    def time(self) -> float:
        return self.wall

    @staticmethod
    def perf_counter() -> float:
        return time.perf_counter()

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> StillClock:
    still = StillClock()
    monkeypatch.setattr(readview, "time", still)
    return still


@pytest.fixture
async def summit(tmp_path: Path) -> AsyncIterator[Summit]:
    """A summit that planned ``slow`` (ready) and ``after-slow`` (blocked behind it)."""
    repo = make_recipes(tmp_path)
    async with summit_service(tmp_path, RepoConfig("recipes", str(repo))) as summit:
        await plan_head(summit, "recipes")
        yield summit


@asynccontextmanager
async def served(summit: Summit) -> AsyncIterator[Callable[[str], Awaitable[str]]]:
    """Summit's API and dashboard over real HTTP on 127.0.0.1: a GET returning the body."""
    async with served_pages(summit) as base, aiohttp.ClientSession() as session:
        async def get(path: str) -> str:
            async with session.get(base + path) as response:
                assert response.status == 200, path
                return await response.text()
        yield get


def kinds(view: readview.View) -> list[str]:
    return [str(g.cause.kind) for g in view.blockage.groups]


async def test_a_quick_view_shows_the_latest_decision_and_is_reused_until_one(
        summit: Summit) -> None:
    scheduler = summit.scheduler
    first = await read_view(scheduler)
    assert views_of(scheduler).current(scheduler)
    assert {n.source for n in first.queue.ordered} == {"slow", "after-slow"}
    assert kinds(first) == ["no-builder"]  # no builder online yet
    assert await read_view(scheduler) is first, "nothing changed: nothing recomputed"
    await summit.operations.pause("recipes")
    paused = await read_view(scheduler)
    assert paused.seq > first.seq and views_of(scheduler).current(scheduler)
    [group] = paused.blockage.groups
    assert (group.text, len(group.tasks)) == (
        "dispatch is paused for repository recipes: blocks 2 tasks", 2)
    assert paused.as_of(True)["up_to_date"] is True


async def test_pages_read_while_nothing_changes_compute_no_view_until_it_ages(
        summit: Summit, clock: StillClock) -> None:
    """Reading pages moves nothing a view depends on: no refresh while the store's version,
    the levers and the fleet stay put, however often pages are read, until the view's
    estimates are older than ESTIMATES_MAX_AGE; then one refresh."""
    scheduler, views = summit.scheduler, views_of(summit.scheduler)
    first = await read_view(scheduler)
    started = views.started
    async with served(summit) as get:
        for _ in range(3):
            clock.advance(readview.ESTIMATES_MAX_AGE / 4)  # and past the old 15 s steps
            for page in ("/", "/queue", "/api/v1/overview", "/api/v1/queue"):
                await get(page)
            assert views.started == started, "pages read, nothing changed: no refresh"
            assert await read_view(scheduler) is first and views.current(scheduler)
        clock.advance(readview.ESTIMATES_MAX_AGE / 4)
        assert not views.current(scheduler), "its estimates aged"
        await get("/")
        aged = await read_view(scheduler)
        assert views.started == started + 1 and aged.seq > first.seq
        assert views.current(scheduler)
        await get("/queue")
        assert views.started == started + 1 and await read_view(scheduler) is aged


async def test_a_slow_view_answers_at_once_and_one_refresh_takes_the_change_in(
        summit: Summit, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readview, "QUICK_S", 0.0)
    scheduler, views = summit.scheduler, views_of(summit.scheduler)
    first = await read_view(scheduler)  # the first view is waited for: there is no other
    # The refresh is held until the stale answers are checked (it is quick on this tree).
    gate, working = threading.Event(), readview._compute

    def held(*args: Any) -> readview.View:
        gate.wait(timeout=60)
        return working(*args)
    monkeypatch.setattr(readview, "_compute", held)
    await summit.operations.pause("recipes")
    started = views.started
    answers = await asyncio.gather(*(read_view(scheduler) for _ in range(5)))
    assert all(a is first for a in answers), "answered from the previous view"
    assert not views.current(scheduler)
    async with served(summit) as get:
        overview = json.loads(await get("/api/v1/overview"))
        assert overview["as_of"]["up_to_date"] is False
        assert [c["kind"] for c in overview["root_causes"]] == ["no-builder"]
        for page in ("/", "/queue"):
            assert "the latest changes are being taken in" in await get(page), page
    gate.set()
    latest = await read_view(scheduler, wait=True)
    assert views.started == started + 1, "the five requests shared one refresh"
    assert views.current(scheduler) and latest is views.view
    assert kinds(latest) == ["paused"]
    async with served(summit) as get:
        assert json.loads(await get("/api/v1/overview"))["as_of"]["up_to_date"] is True
        assert "the latest changes are being taken in" not in await get("/")


async def test_a_failed_refresh_fails_the_request_waiting_for_it_and_the_next_one_retries(
        summit: Summit, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> readview.View:
        assert not gc.isenabled(), "the collector pauses while a view is computed"
        raise RuntimeError("a bug in a read model")
    working = readview._compute
    monkeypatch.setattr(readview, "_compute", broken)
    with pytest.raises(RuntimeError, match="a bug in a read model"):
        await read_view(summit.scheduler)
    assert gc.isenabled(), "and runs again after, even when the computation failed"
    monkeypatch.setattr(readview, "_compute", working)
    view = await read_view(summit.scheduler)
    assert {n.source for n in view.queue.ordered} == {"slow", "after-slow"}
