"""Requests and telemetry an attacker shapes get JSON answers and bounded memory from a real
summit over real HTTP: ids that are digits to ``str.isdigit`` but not to ``int`` (``²``),
webhook JSON nested 100,000 deep, a 20 MB log line on the telemetry."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from daemon.summit.daemon import SummitDaemon
from daemon.summit.web.live import LINE_MAX_BYTES
from events.names import task_log_topic
from events.telemetry import telemetry_from_url
from tests.support.summit import planned, running_summit

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def summit(tmp_path: Path) -> AsyncIterator[SummitDaemon]:
    async with running_summit(tmp_path, name="r", mqtt_url="memory://", poll_interval=3600,
                              repository={"github_secret": "s3cret", "webhook_urls": [
                                  "https://forge.example/distro/recipes"]}) as daemon:
        yield daemon


async def _json(response: aiohttp.ClientResponse) -> dict[str, str]:
    assert response.content_type == "application/json", await response.text()
    body = await response.json()
    assert isinstance(body, dict)
    return body


@pytest.mark.parametrize("path", ["/api/v1/tasks/²", "/api/v1/tasks/%C2%B2/log",
                                  "/api/v1/tasks/١٢"])
async def test_ids_that_are_not_ascii_digits_are_a_json_404(summit: SummitDaemon,
                                                            path: str) -> None:
    # As for any id no task has (the API's documented answer), not a plain-text 500.
    async with aiohttp.ClientSession() as session, session.get(summit.url + path) as got:
        assert got.status == 404
        assert "there is no task" in (await _json(got))["error"]


async def test_dashboard_pages_with_such_ids_are_not_500s(summit: SummitDaemon) -> None:
    async with aiohttp.ClientSession() as session:
        for path in ("/tasks/²", "/tasks?page=²", "/queue?focus=²"):
            async with session.get(summit.url + path) as got:
                assert got.status < 500, path


async def test_webhook_json_nested_deeply_is_a_json_400(summit: SummitDaemon) -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    async with aiohttp.ClientSession() as session, session.post(
            summit.url + "/api/v1/webhooks/github", data=body,
            headers={"Content-Type": "application/json", "X-GitHub-Event": "push"}) as got:
        assert got.status == 400
        assert "nested too deeply" in (await _json(got))["error"]


async def test_a_20_mb_log_line_is_kept_and_served_cut(summit: SummitDaemon) -> None:
    task_id = (await planned(summit))[0].task_id
    telemetry = telemetry_from_url("memory://")
    telemetry.publish(task_log_topic(task_id), b"A" * 20_000_000)
    telemetry.publish(task_log_topic(task_id), b"the next line\n")
    url = f"{summit.url}/api/v1/tasks/{task_id}/log"
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            async with session.get(url) as got:
                log = await _json(got)
            if len(log["lines"]) == 2:
                break
            await asyncio.sleep(0.05)
    first, second = (line["text"] for line in log["lines"])  # type: ignore[attr-defined]
    assert first == "A" * LINE_MAX_BYTES + " [... line cut by summit: " \
        f"{20_000_000 - LINE_MAX_BYTES} more bytes]"
    assert second == "the next line"


async def test_cairn_tasks_escapes_control_characters(summit: SummitDaemon) -> None:
    service = summit.service
    assert service is not None
    task = (await planned(summit))[0]
    planner = service.scheduler.planner_of(task.task_id)
    assert planner is not None
    await service.scheduler.commit(
        planner, planner.fail(task.task_id, "step failed: \x1b]0;owned\x07\x1b[2J\u202egnp"), None)
    outputs = []
    for args in (["ls", "--state", "failed"], ["show", str(task.task_id)]):
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "daemon.cli", "tasks", *args, "--summit", summit.url,
            cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(child.communicate(), 60)
        assert child.returncode == 0, err.decode()
        outputs.append(out.decode())
    for text in outputs:
        assert "\\x1b]0;owned\\x07\\x1b[2J\\u202egnp" in text, text
        assert not any(c in text for c in "\x1b\x07\u202e")
