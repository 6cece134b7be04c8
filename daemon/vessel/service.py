"""The repository service: a thin shell around :class:`daemon.vessel.importer.Importer`.

Vessel publishes only what summit accepted (``build-accepted``: the open task for its source
and release, with the package names that source owns), never a builder's own report. For
each: import it all or nothing, and in the very transaction that writes the new generation
record the event as handled (inbox) and the outcome to announce (outbox:
``package-published`` or ``publish-failed``). A redelivered or replayed event finds its id in
the inbox and changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from aiohttp import web

from daemon.metrics import ServiceMetrics
from daemon.runtime.address import http_url
from daemon.runtime.listen import start_site
from daemon.vessel.http import make_app
from daemon.vessel.importer import Importer, ImportOutcome
from daemon.vessel.repository import Repository
from events import inbox, outbox
from events import payloads as p
from events.bus import Bus, Consumer
from events.envelope import Event, new_event
from events.errors import RejectEvent
from events.outbox import OutboxRelay
from events.sqlite import Connection, Database
from events.topology import VESSEL

log = structlog.get_logger("cairn.vessel")

CONSUMER = "vessel"
SOURCE = "cairn/vessel"


class Vessel:
    """Imports builds and serves the repository over HTTP."""

    name = "vessel"

    def __init__(self, bus: Bus, db: Database, repo: Repository, relay: OutboxRelay, *,
                 host: str = "127.0.0.1", port: int = 0, advertise: str | None = None,
                 metrics: ServiceMetrics | None = None,
                 mounts: Sequence[Callable[[web.Application], None]] = ()) -> None:
        self.bus = bus
        self.db = db
        self.repo = repo
        self.relay = relay
        self.importer = Importer(repo, on_step=self._on_import_step)
        self._host, self._port = host, port
        self._advertise = advertise or host
        self._runner: web.AppRunner | None = None
        self._consumer: Consumer | None = None
        self.url = ""
        self.imported = 0
        self.metrics = metrics
        self._mounts = tuple(mounts)

    async def start(self) -> None:
        report = await self.repo.reconcile(self.db)
        log.info("vessel.reconciled", report=str(report))
        self._runner = web.AppRunner(make_app(self.repo.layout.root, self._mounts), access_log=None)
        await self._runner.setup()
        await start_site(self._runner, self._host, self._port, "[vessel] listen_port")
        port = self._runner.addresses[0][1]
        self.url = http_url(self._advertise, port)
        self._consumer = await self.bus.subscribe(VESSEL, self.handle)
        log.info("vessel.ready", url=self.url, root=str(self.repo.layout.root))

    def _on_import_step(self, step: str) -> None:
        """Announce a publication as soon as ``current`` serves it, before pruning."""
        if step == "switched":
            self.relay.notify()

    async def handle(self, event: Event[Any]) -> None:
        accepted = event.data
        if not isinstance(accepted, p.BuildAccepted):
            # Retrying cannot turn it into an accepted build: dead-letter it now, naming it.
            raise RejectEvent(f"vessel publishes only what summit accepted (build-accepted); "
                              f"got a {event.type} v{event.cairnversion} event ({event.id}) "
                              f"from {event.source}")
        build = accepted.build
        if build.outcome is not p.Outcome.SUCCESS or build.task_id != accepted.task_id:
            raise RejectEvent(f"build-accepted for task {accepted.task_id} carries a build of "
                              f"task {build.task_id} with outcome {build.outcome}")
        if await inbox.seen(self.db, CONSUMER, event.id):
            return
        foreign = sorted({a.name for a in build.artefacts} - set(accepted.packages))
        if foreign:
            raise RejectEvent(f"build-accepted for task {accepted.task_id} lists packages "
                              f"{', '.join(foreign)} that it does not allow")

        async def emit(conn: Connection, outcome: ImportOutcome) -> None:
            if not await inbox.claim(conn, CONSUMER, event.id) or outcome.duplicate:
                return
            await outbox.add(conn, new_event(outcome.event_payload(), source=SOURCE,
                                             causation=event))

        started = time.monotonic()
        with structlog.contextvars.bound_contextvars(task_id=build.task_id, source=build.source):
            # The names summit found declared by the build's source are that source's: a
            # package another source took first under such a name is dropped (it squatted).
            outcome = await self.importer.import_build(self.db, build, emit,
                                                       declared=accepted.packages)
        if self.metrics is not None and not outcome.duplicate:
            self.metrics.observe_import("refused" if outcome.refused else "published",
                                        time.monotonic() - started)
        self.relay.notify()
        if outcome.refused is not None:
            log.warning("vessel.refused", reason=outcome.refused.reason,
                        retryable=outcome.refused.retryable)
        elif not outcome.duplicate:
            self.imported += 1
            log.info("vessel.published", generation=outcome.published and
                     outcome.published.generation)

    async def stop(self, timeout: float = 10.0) -> None:
        if self._consumer is not None:
            await self._consumer.cancel(timeout)
            self._consumer = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
