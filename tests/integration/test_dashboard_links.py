"""A log URL is a builder's word: summit shows only ``http(s)://`` ones as links. An event
carrying another kind is refused when it arrives (the payload types); one already stored (by
an older summit) is shown as text on the task page and left out of the API."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp

from daemon.summit import store
from events import payloads as p
from tests.support.summit import planned, running_summit

HOSTILE = "javascript:fetch('/api/v1/tasks/1/cancel',{method:'POST'})"
FINE = "http://builder.example:8000/artefacts/1/build.log"


async def test_a_stored_javascript_log_url_is_never_a_link(tmp_path: Path) -> None:
    async with running_summit(tmp_path, name="r", mqtt_url="memory://",
                              poll_interval=3600) as summit:
        service = summit.service
        assert service is not None
        task = (await planned(summit))[0]
        async with service.db.transaction() as conn:
            for attempt, url in ((1, HOSTILE), (2, FINE)):
                # Made here, not decoded: as an older summit, which took any URL, stored it.
                await store.record_build(conn, p.BuildDone(
                    task_id=task.task_id, attempt=attempt, builder="b1", source=task.source,
                    version=task.version, release=task.release, build_release=1,
                    arch=task.arch, outcome=p.Outcome.FAILED, reason="x", log_url=url))
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{summit.url}/tasks/{task.task_id}") as page:
                assert page.status == 200
                html = await page.text()
            async with session.get(f"{summit.url}/api/v1/tasks/{task.task_id}/log") as api:
                log = await api.json()
        links = re.findall(r'href="([^"]*)"', html)
        assert FINE in links
        assert not [link for link in links if not link.startswith(("/", "#", "http://"))]
        assert "javascript" not in html
        assert log["log_urls"] == [FINE]
