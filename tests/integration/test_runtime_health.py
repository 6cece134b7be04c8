"""The health endpoint over real HTTP on 127.0.0.1: 200 when every check passes, 503 if not."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from daemon.runtime.health import Health, HealthError, HealthServer
from daemon.runtime.lifecycle import run_service
from events.outbox import OUTBOX_SCHEMA, OutboxRelay
from events.sqlite import Database
from tests.support.ports import free_port
from tests.unit.events.doubles import RecordingBusDouble


async def get(url: str) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.json()


async def test_all_checks_pass() -> None:
    health = Health("summit")

    async def bus_connected() -> None:
        return None

    health.add_check("bus", bus_connected)
    async with HealthServer(health, "127.0.0.1", 0) as server:
        assert server.port
        status, body = await get(server.url)
    assert status == 200
    assert body["status"] == "ok" and body["service"] == "summit"
    assert body["checks"] == {"bus": {"status": "ok"}}


async def test_failing_and_hanging_checks_give_503_with_reasons() -> None:
    health = Health("vessel", check_timeout=0.2)
    broken = True

    async def database() -> None:
        if broken:
            raise RuntimeError("database is locked")

    async def broker() -> None:
        await asyncio.sleep(3600)

    async def fine() -> None:
        return None

    health.add_check("database", database)
    health.add_check("broker", broker)
    health.add_check("disk", fine)
    async with HealthServer(health) as server:
        status, body = await get(server.url)
        assert status == 503
        assert body["status"] == "failing"
        assert body["checks"] == {
            "database": {"status": "failing", "error": "RuntimeError: database is locked"},
            "broker": {"status": "failing", "error": "no answer within 0.2s"},
            "disk": {"status": "ok"},
        }
        broken = False
        health.remove_check("broker")
        status, body = await get(server.url)
        assert status == 200 and body["status"] == "ok"


async def test_mounted_on_a_service_app() -> None:
    health = Health("summit")
    app = web.Application()

    async def index(request: web.Request) -> web.Response:
        return web.Response(text="dashboard")

    app.router.add_get("/", index)
    health.mount(app)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        status, body = await get(f"http://127.0.0.1:{port}/healthz")
    finally:
        await runner.cleanup()
    assert status == 200 and body["service"] == "summit"


async def test_outbox_relay_as_a_check(tmp_path: Path) -> None:
    health = Health("summit")
    async with Database.open(tmp_path / "db", [OUTBOX_SCHEMA]) as db:
        relay = OutboxRelay(db, RecordingBusDouble())
        health.add_check("outbox", relay.check)
        async with HealthServer(health) as server:
            status, body = await get(server.url)
            assert status == 503
            assert "not running" in str(body["checks"])
            async with relay:
                status, _ = await get(server.url)
                assert status == 200


async def test_port_in_use_is_a_clear_error() -> None:
    async with HealthServer(Health("a")) as first:
        assert first.port is not None
        with pytest.raises(HealthError, match=f"cannot serve health on 127.0.0.1:{first.port}"):
            await HealthServer(Health("b"), "127.0.0.1", first.port).start()


async def test_readiness_and_liveness_are_distinct() -> None:
    """A lost broker makes the service unready, not dead: only a liveness check (what a
    restart would cure) fails ``/livez``."""
    health = Health("journal")
    broker_down = True
    wedged = False

    async def bus() -> None:
        if broker_down:
            raise RuntimeError("connection to RabbitMQ lost 1.0s ago")

    async def loop_wedged() -> None:
        if wedged:
            raise RuntimeError("the relay task died")

    health.add_check("bus", bus)
    health.add_check("relay", loop_wedged, liveness=True)
    async with HealthServer(health) as server:
        ready, live = await get(server.url), await get(server.live_url)
        assert ready[0] == 503 and ready[1]["checks"]["bus"]["status"] == "failing"
        assert live == (200, {**live[1], "status": "ok", "checks": {"relay": {"status": "ok"}}})
        broker_down, wedged = False, True
        ready, live = await get(server.url), await get(server.live_url)
        assert ready[0] == 503 and live[0] == 503
        assert live[1]["checks"] == {"relay": {"status": "failing",
                                               "error": "RuntimeError: the relay task died"}}
        wedged = False
        assert (await get(server.url))[0] == 200 and (await get(server.live_url))[0] == 200


class GatedServiceDouble:
    """A service whose start and stop wait until the test lets them finish."""

    name = "gated"

    def __init__(self) -> None:
        self.let_start = asyncio.Event()
        self.let_stop = asyncio.Event()
        self.stopping = asyncio.Event()

    async def start(self) -> None:
        await self.let_start.wait()

    async def stop(self, timeout: float) -> None:
        self.stopping.set()
        await self.let_stop.wait()


async def _until_status(url: str, status: int) -> dict[str, object]:
    async with asyncio.timeout(10):
        while True:
            try:
                code, body = await get(url)
            except aiohttp.ClientConnectionError:  # not listening yet
                code, body = 0, {}
            if code == status:
                return body
            await asyncio.sleep(0.02)


async def test_run_service_is_unready_while_starting_and_from_the_stop_signal_on() -> None:
    health = Health("gated")
    service = GatedServiceDouble()
    server = HealthServer(health, "127.0.0.1", free_port())
    running = asyncio.create_task(run_service(service, health_server=server,
                                              signals=(signal.SIGUSR2,)))
    try:
        body = await _until_status(f"http://127.0.0.1:{server.requested_port}/healthz", 503)
        assert body["phase"] == "starting" and body["checks"] == {}
        assert (await get(server.live_url))[0] == 200
        service.let_start.set()
        body = await _until_status(server.url, 200)
        assert body["phase"] == "running"

        os.kill(os.getpid(), signal.SIGUSR2)
        await asyncio.wait_for(service.stopping.wait(), 10)
        status, body = await get(server.url)
        assert (status, body["phase"]) == (503, "stopping")
        assert (await get(server.live_url))[0] == 200  # draining is not dead
        service.let_stop.set()
        assert await asyncio.wait_for(running, 10) == 0
    finally:
        if not running.done():
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running

