"""One summit daemon in the test's process, as its tests set it up: the example recipes in a
git repository of the test's, its API on a free port, no vessel to publish to."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from daemon.runtime import BusSection, Health, MqttSection, StateSection
from daemon.summit.daemon import RepositorySection, SummitDaemon, SummitDaemonConfig, SummitSection
from daemon.summit.planning.states import Task
from tests.unit.avalanche.support import make_repo


def summit_config(tmp_path: Path, bus_url: str = "memory://", *, name: str = "recipes",
                  mqtt_url: str | None = None, poll_interval: float = 30,
                  repository: dict[str, Any] | None = None,
                  **summit: Any) -> SummitDaemonConfig:
    """Summit on ``bus_url`` watching the example recipes (made under ``tmp_path/recipes``)
    as repository ``name``; ``repository``: more of its ``[[summit.repositories]]`` keys,
    ``summit``: more ``[summit]`` keys."""
    repo, _ = make_repo(tmp_path / "recipes")
    return SummitDaemonConfig(
        bus=BusSection(url=bus_url), state=StateSection(dir=str(tmp_path / "state")),
        mqtt=MqttSection(url=mqtt_url) if mqtt_url else MqttSection(),
        summit=SummitSection(listen_port=0, repository_url="", poll_interval=poll_interval,
                             repositories=[RepositorySection(name=name, url=str(repo),
                                                             **(repository or {}))],
                             **summit))


async def start_summit(tmp_path: Path, bus_url: str = "memory://", **settings: Any
                       ) -> SummitDaemon:
    """A started summit (see :func:`summit_config`); the caller stops it."""
    daemon = SummitDaemon(summit_config(tmp_path, bus_url, **settings), Health("summit"))
    await daemon.start()
    return daemon


@asynccontextmanager
async def running_summit(tmp_path: Path, bus_url: str = "memory://", **settings: Any
                         ) -> AsyncIterator[SummitDaemon]:
    daemon = await start_summit(tmp_path, bus_url, **settings)
    try:
        yield daemon
    finally:
        await daemon.stop(5)


async def planned(daemon: SummitDaemon,
                  enough: Callable[[list[Task]], bool] = bool, timeout: float = 10
                  ) -> list[Task]:
    """Summit's tasks once ``enough`` of them are planned (at first: any); after ``timeout``
    seconds, whatever there is (the caller asserts what it needs)."""
    service = daemon.service
    assert service is not None
    for _ in range(int(timeout / 0.05)):
        if enough(service.scheduler.all_tasks()):
            break
        await asyncio.sleep(0.05)
    return service.scheduler.all_tasks()
