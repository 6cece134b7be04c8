"""``GET /healthz``: is this service able to do its job right now?

Why checks and not just "the process answers": a service whose bus connection is gone or
whose outbox cannot publish is alive but useless; a load balancer, systemd's
``ExecStartPost`` probe or an operator's ``curl`` should see 503 and the reason.

A check is an async callable that returns normally when healthy and raises (with a message a
person can act on) when not. Each check runs with a timeout, so one hung dependency cannot
hang the endpoint. The route can be mounted on a service's own aiohttp application
(:meth:`Health.mount`) or served alone on ``[health] host/port`` (:class:`HealthServer`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web

from events.errors import CairnError

Check = Callable[[], Awaitable[object]]

HEALTH_PATH = "/healthz"


class HealthError(CairnError):
    """The health server could not start (port in use, bad address)."""


class Health:
    """A service's named health checks and the handler that runs them."""

    def __init__(self, service: str, *, check_timeout: float = 2.0) -> None:
        self.service = service
        self.check_timeout = check_timeout
        self._checks: dict[str, Check] = {}
        self._started = time.monotonic()

    def add_check(self, name: str, check: Check) -> None:
        """Register ``check`` under ``name`` (replacing one of the same name)."""
        self._checks[name] = check

    def remove_check(self, name: str) -> None:
        self._checks.pop(name, None)

    async def run_checks(self) -> tuple[bool, dict[str, dict[str, str]]]:
        """Run every check concurrently; (all healthy, per-check status and error)."""
        names = list(self._checks)
        outcomes = await asyncio.gather(*(self._run_one(self._checks[n]) for n in names))
        results = dict(zip(names, outcomes, strict=True))
        return all(r["status"] == "ok" for r in results.values()), results

    async def _run_one(self, check: Check) -> dict[str, str]:
        try:
            async with asyncio.timeout(self.check_timeout):
                await check()
        except TimeoutError:
            return {"status": "failing", "error": f"no answer within {self.check_timeout}s"}
        except Exception as exc:
            return {"status": "failing", "error": f"{type(exc).__name__}: {exc}"}
        return {"status": "ok"}

    async def handle(self, request: web.Request) -> web.Response:
        healthy, checks = await self.run_checks()
        body: dict[str, Any] = {
            "status": "ok" if healthy else "failing",
            "service": self.service,
            "uptime_s": round(time.monotonic() - self._started, 3),
            "checks": checks,
        }
        return web.json_response(body, status=200 if healthy else 503)

    def mount(self, app: web.Application, path: str = HEALTH_PATH) -> None:
        """Add ``GET path`` to an application the service already runs."""
        app.router.add_get(path, self.handle)


class HealthServer:
    """A standalone aiohttp server for the health endpoint (``port=0``: an ephemeral port)."""

    def __init__(self, health: Health, host: str = "127.0.0.1", port: int = 0,
                 mounts: Sequence[Callable[[web.Application], None]] = ()) -> None:
        self.health = health
        self.mounts = tuple(mounts)
        self.host = host
        self.requested_port = port
        self.port: int | None = None
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        self.health.mount(app)
        for mount in self.mounts:  # e.g. the service's /metrics beside /healthz
            mount(app)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.requested_port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise HealthError(
                f"cannot serve health on {self.host}:{self.requested_port}: {exc.strerror} "
                "(set [health] port, or CAIRN_HEALTH_PORT, to a free port)"
            ) from exc
        self._runner = runner
        self.port = _bound_port(runner)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{HEALTH_PATH}"

    async def __aenter__(self) -> HealthServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def _bound_port(runner: web.AppRunner) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    raise HealthError("the health server is listening on no TCP address")
