"""The health endpoint over real HTTP on 127.0.0.1: 200 when every check passes, 503 if not."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from daemon.runtime.health import Health, HealthError, HealthServer
from events.outbox import OUTBOX_SCHEMA, OutboxRelay
from events.sqlite import Database
from tests.unit.test_outbox import RecordingBus


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
        relay = OutboxRelay(db, RecordingBus())
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
