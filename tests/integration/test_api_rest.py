"""Summit's REST API on a real ``cairn up``: while ``slow`` builds, ``after-slow`` waits for
it (blocker in words, queue edge, builder presence, live log over SSE); once both are
published, generations, channels, logs and the admin calls answer as documented."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.cairn_up import CairnUp, make_recipes, running_farm

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CairnUp]:
    root = tmp_path_factory.mktemp("api")
    with running_farm(root, make_recipes(root, lines=12, pause=0.5)) as running:
        yield running


def call(farm: CairnUp, method: str, path: str, token: str | None = None,
         body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode() if body is not None else b""
    request = urllib.request.Request(farm.url + path, method=method, data=data if
                                     method == "POST" else None)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.headers["Content-Type"].startswith("application/json")
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        assert exc.headers["Content-Type"].startswith("application/json"), path
        return exc.code, json.loads(exc.read())


def by_source(farm: CairnUp) -> dict[str, dict[str, Any]]:
    return {t["source"]: t for t in farm.get("/api/v1/tasks")["tasks"]}


def sse_events(farm: CairnUp, path: str, wanted: int) -> list[tuple[str, dict[str, Any]]]:
    """Read ``wanted`` events from a server-sent event stream."""
    out: list[tuple[str, dict[str, Any]]] = []
    with urllib.request.urlopen(farm.url + path, timeout=20) as response:
        assert response.headers["Content-Type"] == "text/event-stream"
        event = ""
        for raw in response:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                out.append((event, json.loads(line[6:])))
                if len(out) >= wanted:
                    return out
    return out


def test_while_building(farm: CairnUp) -> None:
    slow = farm.wait_for("slow building", lambda: by_source(farm).get("slow", {}).get(
        "state") == "building" and by_source(farm)["slow"])
    after = by_source(farm)["after-slow"]
    detail = farm.get(f"/api/v1/tasks/{after['id']}")
    assert detail["state"] == "blocked"
    assert [b["text"] for b in detail["blockers"]] == [
        f"waiting for slow (task {slow['id']}) to be published"]
    assert detail["dependencies"] == [{"source": "slow", "id": slow["id"],
                                       "state": "building"}]
    queue = farm.get("/api/v1/queue")
    assert {n["source"] for n in queue["nodes"]} == {"slow", "after-slow"}
    assert queue["edges"] == [{"from": after["id"], "to": slow["id"]}]
    builders = farm.wait_for("the builder's presence", lambda: [
        b for b in farm.get("/api/v1/builders")["builders"] if b["tasks"]])
    assert builders[0]["tasks"][0] == {"id": slow["id"], "source": "slow",
                                       "state": "building"}
    # The live log: what is kept so far, then new lines over SSE, numbered in order.
    farm.wait_for("log lines", lambda: farm.get(f"/api/v1/tasks/{slow['id']}/log")["lines"])
    events = sse_events(farm, f"/api/v1/tasks/{slow['id']}/log/stream", 4)
    logs = [data for kind, data in events if kind == "log"]
    assert [line["seq"] for line in logs] == list(range(logs[0]["seq"], logs[0]["seq"] +
                                                         len(logs)))
    assert logs[0]["seq"] == 0 and all(line["task"] == slow["id"] for line in logs)


def test_after_publication(farm: CairnUp) -> None:
    farm.wait_for("both completed", lambda: {t["state"] for t in by_source(farm).values()}
                  == {"completed"})
    tasks = by_source(farm)
    log = farm.get(f"/api/v1/tasks/{tasks['slow']['id']}/log")
    texts = [line["text"] for line in log["lines"]]
    assert "slow step 12 of 12" in texts and log["live"] is False
    assert len(log["log_urls"]) == 1 and log["log_urls"][0].endswith("build.log")
    # Provenance: which environment built it (none here: cairn up on the host's system).
    builds = farm.get(f"/api/v1/tasks/{tasks['slow']['id']}")["builds"]
    assert [(b["outcome"], b["environment"]) for b in builds] == [("success", None)]
    gens = farm.get("/api/v1/generations")
    assert gens["total"] == 2
    assert [g["source"] for g in gens["generations"]] == ["after-slow", "slow"]
    newest = gens["generations"][0]["generation"]
    channels = farm.get("/api/v1/channels")
    volatile = [c for c in channels["channels"] if c["channel"] == "volatile"]
    assert [c["generation"] for c in volatile] == [newest]
    stable = [c for c in channels["channels"] if c["channel"] == "stable"]
    assert stable[0]["generation"] is None and stable[0]["error"] == "not published"
    recipes = farm.get("/api/v1/recipes?q=after")
    assert [r["name"] for r in recipes["recipes"]] == ["after-slow"]
    assert recipes["recipes"][0]["published_release"] == 1
    repo = farm.get("/api/v1/repositories/recipes")
    assert repo["head"] and repo["recipes"] == 2 and repo["recipe_errors"] == []
    events = farm.get(f"/api/v1/events?task_id={tasks['slow']['id']}")
    assert [e["type"] for e in reversed(events["events"])] == [
        "ready", "ready", "building", "publishing", "completed"]
    assert events["events"][-2]["summary"].startswith("assigned to ")


def test_filters_pagination_and_errors(farm: CairnUp) -> None:
    page = farm.get("/api/v1/tasks?limit=1&offset=1")
    assert page["total"] == 2 and len(page["tasks"]) == 1 and page["offset"] == 1
    assert farm.get("/api/v1/tasks?source=slow")["total"] == 1
    assert farm.get("/api/v1/tasks?q=AFTER")["total"] == 1
    assert farm.get("/api/v1/tasks?state=failed")["total"] == 0
    for path, status, words in (
            ("/api/v1/tasks?state=bogus", 400, "unknown state 'bogus'"),
            ("/api/v1/tasks?limit=x", 400, "limit must be an integer"),
            ("/api/v1/tasks?limit=501", 400, "limit must be between 1 and 500"),
            ("/api/v1/tasks?state=new&state=failed", 400, "state is given 2 times"),
            ("/api/v1/tasks?q=" + "x" * 101, 400, "q must be at most 100 characters"),
            ("/api/v1/tasks/424242", 404, "there is no task 424242"),
            ("/api/v1/tasks/abc/log", 404, "there is no task abc"),
            ("/api/v1/repositories/nope", 404, "there is no repository 'nope'"),
            ("/api/v1/nowhere", 404, "openapi.json")):
        code, body = call(farm, "GET", path)
        assert code == status and words in body["error"], (path, body)
    code, body = call(farm, "DELETE", "/api/v1/tasks")
    assert code == 405 and "allowed" in body["error"]


def test_admin_calls(farm: CairnUp) -> None:
    slow = by_source(farm)["slow"]
    code, body = call(farm, "POST", f"/api/v1/tasks/{slow['id']}/retry")
    assert code == 401 and "admin token" in body["error"]
    code, body = call(farm, "POST", f"/api/v1/tasks/{slow['id']}/retry", token="wrong")
    assert code == 401
    token = farm.token()
    farm.wait_for("slow completed", lambda: by_source(farm)["slow"]["state"] == "completed")
    code, body = call(farm, "POST", f"/api/v1/tasks/{slow['id']}/retry", token=token)
    assert code == 409 and "only failed or cancelled tasks can be retried" in body["error"]
    code, body = call(farm, "POST", f"/api/v1/tasks/{slow['id']}/cancel", token=token)
    assert code == 409 and "cannot be cancelled" in body["error"]
    code, body = call(farm, "POST", "/api/v1/repositories/recipes/refresh", token=token)
    assert code == 202 and body == {"status": "refreshing"}
    code, body = call(farm, "POST", "/api/v1/repositories/nope/refresh", token=token)
    assert code == 404


def test_update_stream_starts_with_counts(farm: CairnUp) -> None:
    kind, counts = sse_events(farm, "/api/v1/stream", 1)[0]
    assert kind == "counts"
    assert counts == farm.get("/api/v1/overview")["counts"]


def test_openapi_describes_every_route(farm: CairnUp) -> None:
    document = farm.get("/api/v1/openapi.json")
    assert document["openapi"].startswith("3.")
    paths = set(document["paths"])
    for path in ("/api/v1/tasks", "/api/v1/tasks/{task_id}", "/api/v1/tasks/{task_id}/log",
                 "/api/v1/builders", "/api/v1/queue", "/api/v1/channels",
                 "/api/v1/generations", "/api/v1/recipes", "/api/v1/repositories",
                 "/api/v1/tasks/{task_id}/retry", "/api/v1/tasks/{task_id}/cancel",
                 "/api/v1/repositories/{name}/refresh", "/api/v1/stream"):
        assert path in paths


# Last: it makes the farm build again.
def test_pointing_the_repository_at_another_environment(farm: CairnUp) -> None:
    token = farm.token()
    farm.wait_for("both completed", lambda: {t["state"] for t in by_source(farm).values()}
                  == {"completed"})
    assert farm.get("/api/v1/repositories/recipes")["environment"] is None
    path = "/api/v1/repositories/recipes/environment"
    for body, status, words in (({"environment": "sha256:xyz"}, 400, "is not a sha256 digest"),
                                ({}, 400, "environment must be a sha256 digest, or null")):
        code, answer = call(farm, "POST", path, token=token, body=body)
        assert code == status and words in answer["error"], answer
    code, answer = call(farm, "POST", "/api/v1/repositories/nope/environment", token=token,
                        body={"environment": None})
    assert code == 404
    digest = "ab" * 32
    code, answer = call(farm, "POST", path, token=token, body={"environment": f"sha256:{digest}"})
    assert code == 200 and answer["environment"] == digest
    rebuilt = {t["source"]: t for t in answer["tasks"]}
    assert set(rebuilt) == {"slow", "after-slow"}
    assert {(t["reason"], t["build_release"]) for t in rebuilt.values()} == {
        ("build environment changed", 2)}
    assert farm.get("/api/v1/repositories/recipes")["environment"] == digest
    # Back to none, so the builders of this farm (on the host) can build again; the tasks
    # not started yet are assigned with whatever the repository names then.
    code, answer = call(farm, "POST", path, token=token, body={"environment": None})
    assert code == 200 and answer["environment"] is None

