"""Finished artefacts and logs, served read-only over HTTP until vessel has them.

Each build leaves ``artefacts/<build_id>/`` (packages and ``build.log``). The store turns a
:class:`~.build.BuildResult` into the ``build-done`` payload with URLs, sha256 and size; the
aiohttp app serves ``GET /artefacts/<build_id>/<file>`` (nothing else, no listing, no
writes). A build's directory is removed when the service calls :meth:`ArtefactStore.release`
(vessel published or refused it) or when it is older than the retention time, whichever
comes first; a later download then gets 404, which vessel reports as a failed import.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

from aiohttp import web

from daemon.runtime.address import http_url
from daemon.runtime.listen import start_site
from events.payloads import Artefact, BuildDoneV3, TaskReady

from .build import LOG_NAME, BuildResult

_BUILD_ID = re.compile(r"^[0-9]+-[0-9a-f]+$")
_FILENAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+~-]*$")
_REASON_MAX = 4000


class ArtefactStore:
    """The artefacts directory of one builder, and the URLs it is served at."""

    def __init__(self, root: Path, base_url: str = "", retention_s: float = 7 * 86400) -> None:
        self.root = root
        self.base_url = base_url.rstrip("/")
        self.retention_s = retention_s
        root.mkdir(parents=True, exist_ok=True)

    def url(self, build_id: str, filename: str) -> str:
        return f"{self.base_url}/artefacts/{build_id}/{filename}"

    def artefacts(self, result: BuildResult) -> list[Artefact]:
        return [
            Artefact(
                name=a.name,
                filename=a.filename,
                url=self.url(result.build_id, a.filename),
                sha256=a.sha256,
                size=a.size,
            )
            for a in result.artefacts
        ]

    def build_done(self, task: TaskReady, result: BuildResult, builder: str) -> BuildDoneV3:
        """The ``build-done`` payload for ``result``."""
        reason = result.reason[:_REASON_MAX] if result.reason else None
        return BuildDoneV3(
            task_id=task.task_id,
            attempt=task.attempt,
            builder=builder,
            source=task.source,
            version=task.version,
            release=task.release,
            build_release=task.build_release,
            arch=task.arch,
            outcome=result.outcome,
            reason=reason,
            log_url=self.url(result.build_id, LOG_NAME),
            artefacts=self.artefacts(result),
            duration_s=max(result.duration_s, 0.0),
            channel=task.channel,
            usage=result.usage,
            environment=result.environment,
        )

    def path_for(self, build_id: str, filename: str) -> Path | None:
        """The file to serve, or ``None`` for a name that is not a served file."""
        if not _BUILD_ID.fullmatch(build_id) or not _FILENAME.fullmatch(filename):
            return None
        path = self.root / build_id / filename
        return path if path.is_file() and not path.is_symlink() else None

    def release(self, task_id: int) -> int:
        """Forget every build of ``task_id``; returns how many were removed."""
        removed = 0
        for path in self.root.glob(f"{task_id}-*"):
            if path.is_dir() and _BUILD_ID.fullmatch(path.name):
                shutil.rmtree(path, ignore_errors=True)
                removed += 1
        return removed

    def prune(self, now: float | None = None) -> int:
        """Remove builds older than the retention time; returns how many were removed."""
        cutoff = (time.time() if now is None else now) - self.retention_s
        removed = 0
        for path in self.root.iterdir():
            if path.is_dir() and _BUILD_ID.fullmatch(path.name) and path.stat().st_mtime < cutoff:
                shutil.rmtree(path, ignore_errors=True)
                removed += 1
        return removed


STORE_KEY = web.AppKey("store", ArtefactStore)


async def _get(request: web.Request) -> web.StreamResponse:
    store = request.app[STORE_KEY]
    path = store.path_for(request.match_info["build_id"], request.match_info["filename"])
    if path is None:
        raise web.HTTPNotFound(text="no such artefact (released, expired or never built)\n")
    content_type = "text/plain" if path.name == LOG_NAME else "application/zstd"
    return web.FileResponse(path, headers={"Content-Type": content_type})


def make_app(store: ArtefactStore, prune_every_s: float | None = None) -> web.Application:
    """The read-only artefact app; it prunes expired builds in the background."""
    app = web.Application()
    app[STORE_KEY] = store
    app.router.add_get("/artefacts/{build_id}/{filename}", _get)
    interval = prune_every_s or max(1.0, min(store.retention_s / 4, 300.0))

    async def pruner(_app: web.Application) -> AsyncIterator[None]:
        async def loop() -> None:
            while True:
                await asyncio.to_thread(store.prune)
                await asyncio.sleep(interval)

        task = asyncio.create_task(loop())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(pruner)
    return app


class ArtefactServer:
    """Runs :func:`make_app` on ``host:port`` (port 0: ephemeral) and sets the store's URL."""

    def __init__(self, store: ArtefactStore, public_url: str | None = None,
                 mounts: Sequence[Callable[[web.Application], None]] = ()) -> None:
        self.store = store
        self.public_url = public_url
        self.mounts = tuple(mounts)
        self._runner: web.AppRunner | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0,
                    advertise: str | None = None) -> str:
        """Serve on ``host:port``; URLs name ``advertise`` (the address other hosts reach
        this one at, when ``host`` is a wildcard) unless a public URL is configured."""
        app = make_app(self.store)
        for mount in self.mounts:  # the builder's /metrics and /healthz
            mount(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await start_site(self._runner, host, port, "[avalanche] listen_port")
        addresses = self._runner.addresses
        bound = int(addresses[0][1]) if addresses else port
        self.store.base_url = (self.public_url or http_url(advertise or host, bound)).rstrip("/")
        return self.store.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
