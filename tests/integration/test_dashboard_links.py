"""A log URL is a builder's word: summit shows only ``http(s)://`` ones as links. An event
carrying another kind is refused when it arrives (the payload types); one already stored (by
an older summit) is shown as text on the task page and left out of the API."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import aiohttp

from daemon.runtime import BusSection, Health, MqttSection, StateSection
from daemon.summit import store
from daemon.summit.daemon import RepositorySection, SummitDaemon, SummitDaemonConfig, SummitSection
from events import payloads as p
from tests.unit.avalanche.support import make_repo

HOSTILE = "javascript:fetch('/api/v1/tasks/1/cancel',{method:'POST'})"
FINE = "http://builder.example:8000/artefacts/1/build.log"


async def test_a_stored_javascript_log_url_is_never_a_link(tmp_path: Path) -> None:
    repo, _ = make_repo(tmp_path / "recipes")
    config = SummitDaemonConfig(
        bus=BusSection(url="memory://"), mqtt=MqttSection(url="memory://"),
        state=StateSection(dir=str(tmp_path / "s")),
        summit=SummitSection(listen_port=0, repository_url="", poll_interval=3600,
                             repositories=[RepositorySection(name="r", url=str(repo))]))
    summit = SummitDaemon(config, Health("summit"))
    await summit.start()
    try:
        service = summit.service
        assert service is not None
        for _ in range(200):
            if service.scheduler.all_tasks():
                break
            await asyncio.sleep(0.05)
        task = service.scheduler.all_tasks()[0]
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
    finally:
        await summit.stop(5)
