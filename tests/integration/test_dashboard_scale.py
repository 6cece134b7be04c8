"""The dashboard on a tree the size of a small distribution, in Chromium (Playwright) against
a real ``cairn up --backend noop``: the overview names the root causes with the number of
tasks each holds back, nothing overflows its card, the queue finds a task by name and its
focus view draws only that task's edges. Screenshots of the overview and the queue are
saved to ``$CAIRN_SCREENSHOTS`` (or the test's tmp directory) and their paths printed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.cairn_up import CairnUp, running_farm
from tests.integration.scaletree import LONG, Expected, make_distribution, recipes
from tests.integration.test_dashboard_browser import CHROMIUM_ARGS, chromium, screenshots_dir

pytestmark = [pytest.mark.slow]

#: Every card must hold its content.
OVERFLOWING = """() => [...document.querySelectorAll('.card, .limit')]
  .filter(e => e.scrollWidth > e.clientWidth + 1)
  .map(e => (e.id || e.className) + ': ' + e.scrollWidth + ' > ' + e.clientWidth)"""


def settled(farm: CairnUp, expected: Expected) -> dict[str, Any]:
    """The overview once everything that can build has, and the failure is known."""
    def done() -> dict[str, Any] | None:
        found = farm.get("/api/v1/overview")
        counts = found["counts"]
        left = counts["new"] + counts["ready"] + counts["building"] + counts["publishing"]
        return found if counts["failed"] == 1 and not left else None
    result: dict[str, Any] = farm.wait_for("the farm to settle", done, timeout=100)
    return result


#: Boxes of the drawn queue that overlap another, or whose task id spills out of the box.
OVERLAPPING = """() => {
  const boxes = [...document.querySelectorAll('.graph .node')]
    .map(e => [e, e.getBoundingClientRect()]);
  const out = [];
  boxes.forEach(([e, r], i) => {
    const id = e.querySelector('.id').getBoundingClientRect();
    if (id.right > r.right || id.left < r.left) out.push(e.textContent + ': id outside its box');
    boxes.slice(i + 1).forEach(([f, q]) => {
      if (r.left < q.right && q.left < r.right && r.top < q.bottom && q.top < r.bottom)
        out.push(e.textContent + ' overlaps ' + f.textContent);
    });
  });
  return out;
}"""


def no_overflow(page: Any, where: str) -> None:
    assert page.evaluate(OVERFLOWING) == [], f"something overflows its box on {where}"
    assert page.evaluate(OVERLAPPING) == [], f"boxes overlap on {where}"


def focus_edges(source: str) -> set[tuple[str, str]]:
    """The edges of ``source``'s focus view, from the tree's definition: among what it waits
    for (transitively) and among what waits for it, of the tasks still open."""
    deps, _ = recipes()
    open_ = {s for s in deps if not s.startswith("ok-") and s != "broken"}
    waits = {s: {d for d in deps[s] if d in open_} for s in open_}

    def reach(start: str, succ: dict[str, set[str]]) -> set[str]:
        seen, todo = {start}, [start]
        while todo:
            for nxt in succ.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen
    waited: dict[str, set[str]] = {}
    for s, ds in waits.items():
        for d in ds:
            waited.setdefault(d, set()).add(s)
    up, down = reach(source, waits), reach(source, waited)
    return {(a, b) for a in open_ for b in waits[a]
            if (a in up and b in up) or (a in down and b in down)}


def api_queue_in_pages(farm: CairnUp, held: int) -> None:
    """``/api/v1/queue`` answers a page at a time with the edges among that page only, the
    columns of everything, a search, and one task's focus: never the whole queue."""
    first = farm.get("/api/v1/queue?limit=50")
    assert (first["total"], first["open"], len(first["nodes"])) == (held, held, 50)
    assert sum(c["count"] for c in first["columns"]) == held
    shown = {n["id"] for n in first["nodes"]}
    assert first["edges"] and all(e["from"] in shown and e["to"] in shown
                                  for e in first["edges"])
    rest = farm.get("/api/v1/queue?limit=500&offset=50")
    assert len(rest["nodes"]) == held - 50 and not shown & {n["id"] for n in rest["nodes"]}
    [found] = farm.get("/api/v1/queue?q=bc-12")["nodes"]
    assert found["source"] == "bc-12" and found["column"] == "stuck"
    around = farm.get(f"/api/v1/queue?q=bc-12&focus={found['id']}")["focus"]
    names = {n["id"]: n["source"] for n in around["nodes"]}
    assert {(names[e["from"]], names[e["to"]]) for e in around["edges"]} == \
        focus_edges("bc-12")
    assert farm.get("/api/v1/queue?state=ready")["total"] == 0


def test_overview_and_queue_at_the_scale_of_a_distribution(tmp_path: Path) -> None:
    executable = chromium()
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="the playwright package is not installed")
    shots = screenshots_dir(tmp_path)
    recipes, expected = make_distribution(tmp_path)
    with running_farm(tmp_path, recipes, builders=4, backend="noop") as farm, \
            sync_api.sync_playwright() as pw:
        settled(farm, expected)
        api_queue_in_pages(farm, expected.behind_cycle + expected.behind_failure + 1)
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(farm.url + "/")
            causes = {li.get_attribute("data-cause").split(":")[0]: li
                      for li in page.locator("#root-causes li.cause").all()}
            assert sorted(causes) == ["cycle", "failed", "unresolvable"]
            cycle = causes["cycle"].inner_text()
            assert f"cycle of {len(expected.cycle)} (cyc-01, cyc-02, cyc-03, …) with nothing " \
                   f"published: blocks {expected.behind_cycle} tasks" in cycle
            assert LONG not in cycle.split("\n")[0], "the members are collapsed"
            assert f"{expected.failed} failed: blocks {expected.behind_failure} tasks" in \
                causes["failed"].inner_text()
            assert f"nothing provides {expected.unresolvable}: blocks " \
                   f"{expected.behind_unresolvable} tasks" in causes["unresolvable"].inner_text()
            assert page.locator("#limit").inner_text() == (
                "Everything left is blocked by 3 root causes "
                f"({expected.behind_cycle + expected.behind_failure + 1} tasks held back).")
            # Recent events: one line per event and state, never one per blocked task.
            types = page.eval_on_selector_all("#recent li", "els => els.map(e => e.dataset.type)")
            assert types.count("blocked") <= 1
            no_overflow(page, "the overview")
            overview = shots / "overview.png"
            page.screenshot(path=str(overview), full_page=True)
            print(f"screenshot: {overview}")

            # One click lists the tasks behind a cause.
            causes["failed"].locator("a.held").click()
            page.wait_for_url("**/tasks?cause=*")
            assert f"{expected.behind_failure} tasks" in page.locator("main").inner_text()
            listed = page.eval_on_selector_all("table.tasks td:first-child a",
                                               "els => els.map(e => e.textContent)")
            assert any(name.startswith("both ") for name in listed)

            queue = browser.new_page(viewport={"width": 1280, "height": 900})
            queue.goto(farm.url + "/queue")
            held = expected.behind_cycle + expected.behind_failure + 1
            assert f"{held} tasks open" in queue.locator("#matches h2").inner_text()
            assert queue.locator(".graph .edge").count() == 0, "hundreds are listed, not drawn"
            # No estimate, and the page says why in the overview's words (builders are idle).
            assert "Everything left is blocked by 3 root causes" in \
                queue.locator("#queue-finish").inner_text()
            no_overflow(queue, "the queue")
            queue_shot = shots / "queue.png"
            queue.screenshot(path=str(queue_shot), full_page=True)
            print(f"screenshot: {queue_shot}")
            # Search finds a task by name...
            queue.fill('input[name="q"]', "bc-12")
            queue.click('form.filters button[type="submit"]')
            queue.wait_for_url("**/queue?*q=bc-12*")
            rows = queue.eval_on_selector_all("#matches td.name a",
                                              "els => els.map(e => e.textContent)")
            assert [r.split(" #")[0] for r in rows] == ["bc-12"]
            # ... and its focus view draws only its edges.
            queue.locator('#matches a', has_text="focus").click()
            queue.wait_for_url("**focus=*")
            names = dict(queue.eval_on_selector_all(
                ".graph .node", "els => els.map(e => [e.dataset.taskNode, "
                                "e.querySelector('.name').textContent])"))
            drawn = {(names[a], names[b]) for a, b in queue.eval_on_selector_all(
                ".graph .edge", "els => els.map(e => [e.dataset.from, e.dataset.to])")}
            assert drawn == focus_edges("bc-12")
            assert LONG in names.values()
            no_overflow(queue, "the focus view")
            focus_shot = shots / "queue-focus.png"
            queue.screenshot(path=str(focus_shot), full_page=True)
            print(f"screenshot: {focus_shot}")
        finally:
            browser.close()
