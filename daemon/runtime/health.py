"""``GET /healthz`` (ready?) and ``GET /livez`` (alive?): what a supervisor and a load
balancer ask a service.

Why checks and not just "the process answers": a service whose bus connection is gone or
whose outbox cannot publish is alive but useless; a load balancer, systemd's
``ExecStartPost`` probe or an operator's ``curl`` should see 503 and the reason. Why two
endpoints: restarting a service does not bring its broker back, so a supervisor that
restarts on failure must only ask whether the process itself still works.

* **readiness** (``/healthz``): 200 only while the service runs (not starting, not
  stopping) and every check passes; else 503 with each check's status and error. Checks
  answer from state their connections keep current (the bus and MQTT clients learn of a
  lost connection as it happens), so an outage shows within a second or two, and so does
  its end.
* **liveness** (``/livez``): 200 while the process serves HTTP and every *liveness* check
  passes (none by default: an event loop that answers is alive); it stays 200 through an
  outage and while draining on SIGTERM.

A check is an async callable that returns normally when healthy and raises (with a message a
person can act on) when not. Each check runs with a timeout, so one hung dependency cannot
hang the endpoint. The routes can be mounted on a service's own aiohttp application
(:meth:`Health.mount`) or served alone on ``[health] host/port`` (:class:`HealthServer`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from enum import StrEnum
from typing import Any

from aiohttp import web

from events.errors import CairnError

Check = Callable[[], Awaitable[object]]

HEALTH_PATH = "/healthz"
LIVE_PATH = "/livez"


class HealthError(CairnError):
    """The health server could not start (port in use, bad address)."""


class Phase(StrEnum):
    """Where a service is in its life, as :func:`daemon.runtime.run_service` drives it. A
    :class:`Health` that no lifecycle drives (``cairn up``) stays ``running``."""

    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"


class Health:
    """A service's named health checks and the handlers that run them."""

    def __init__(self, service: str, *, check_timeout: float = 2.0) -> None:
        self.service = service
        self.check_timeout = check_timeout
        self.phase = Phase.RUNNING
        self._checks: dict[str, Check] = {}
        self._liveness: set[str] = set()
        self._started = time.monotonic()

    def add_check(self, name: str, check: Check, *, liveness: bool = False) -> None:
        """Register ``check`` under ``name`` (replacing one of the same name). Every check
        counts for readiness; a ``liveness`` one also for liveness (only what a restart of
        this process would cure belongs there)."""
        self._checks[name] = check
        if liveness:
            self._liveness.add(name)
        else:
            self._liveness.discard(name)

    def remove_check(self, name: str) -> None:
        self._checks.pop(name, None)
        self._liveness.discard(name)

    async def run_checks(self, *, liveness_only: bool = False
                         ) -> tuple[bool, dict[str, dict[str, str]]]:
        """Run the checks concurrently; (all healthy, per-check status and error)."""
        names = [n for n in self._checks if not liveness_only or n in self._liveness]
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

    async def ready(self) -> tuple[bool, dict[str, Any]]:
        """Readiness: (ready, the body ``/healthz`` answers with)."""
        healthy, checks = await self.run_checks()
        ready = healthy and self.phase is Phase.RUNNING
        return ready, self._body("ok" if ready else "failing", checks)

    async def live(self) -> tuple[bool, dict[str, Any]]:
        """Liveness: (alive, the body ``/livez`` answers with)."""
        alive, checks = await self.run_checks(liveness_only=True)
        return alive, self._body("ok" if alive else "failing", checks)

    def _body(self, status: str, checks: dict[str, dict[str, str]]) -> dict[str, Any]:
        return {
            "status": status,
            "service": self.service,
            "phase": self.phase.value,
            "uptime_s": round(time.monotonic() - self._started, 3),
            "checks": checks,
        }

    async def handle(self, request: web.Request) -> web.Response:
        ready, body = await self.ready()
        return web.json_response(body, status=200 if ready else 503)

    async def handle_live(self, request: web.Request) -> web.Response:
        alive, body = await self.live()
        return web.json_response(body, status=200 if alive else 503)

    def mount(self, app: web.Application, path: str = HEALTH_PATH,
              live_path: str = LIVE_PATH) -> None:
        """Add ``GET path`` (readiness) and ``GET live_path`` (liveness) to an application
        the service already runs."""
        app.router.add_get(path, self.handle)
        app.router.add_get(live_path, self.handle_live)


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
        """Readiness."""
        return f"http://{self.host}:{self.port}{HEALTH_PATH}"

    @property
    def live_url(self) -> str:
        """Liveness."""
        return f"http://{self.host}:{self.port}{LIVE_PATH}"

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
