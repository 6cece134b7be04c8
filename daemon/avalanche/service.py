"""The builder service: a thin shell around :mod:`daemon.avalanche.runner`.

Summit assigns each task to one builder (``task-ready`` on the builder's own queue). The
builder claims it (``build-started``) and builds only once summit admits the claim
(``build-admitted``): a task summit cancelled or superseded meanwhile, however late the
builder took the message, is refused (``task-cancelled``) and never starts. The build then
runs on its own, apart from any delivery: a broker restart does not stop it, and its
``build-done`` is published as soon as the broker is back. Every ``heartbeat_s`` seconds the
builder says it is alive, with its capacity and what it holds (``builder-seen``); summit
gives the tasks of a builder it stops hearing from to another builder. Log lines and
presence go to telemetry as they happen.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Any

import msgspec
import structlog
from aiohttp import web

from daemon.avalanche.artefacts import ArtefactServer, ArtefactStore
from daemon.avalanche.build import remove_stale_trees
from daemon.avalanche.config import AvalancheConfig
from daemon.avalanche.runner import RunningBuild, start_build
from daemon.metrics import ServiceMetrics
from events import payloads as p
from events.bus import Bus, Consumer
from events.envelope import Event, new_event
from events.errors import CairnError, RejectEvent
from events.names import builder_status_topic, task_log_topic
from events.telemetry import Telemetry
from events.topology import builder as builder_subscription

log = structlog.get_logger("cairn.avalanche")

#: Seconds between two ``builder-seen`` reports.
HEARTBEAT_S = 10.0
#: Longest wait between two tries of publishing a finished build's report.
REPORT_RETRY_MAX_S = 30.0


class BuilderState(StrEnum):
    """The presence shown on MQTT (the dashboard's live view)."""

    ONLINE = "online"
    BUILDING = "building"
    DRAINING = "draining"
    OFFLINE = "offline"


def status_payload(builder: str, arch: str, state: str, building: list[int],
                   slots: int) -> bytes:
    """The retained presence document of a builder."""
    return json.dumps({"builder": builder, "arch": arch, "state": state, "tasks": building,
                       "slots": slots, "time": time.time()}).encode()


class Avalanche:
    """One builder with ``slots`` concurrent builds."""

    def __init__(self, bus: Bus, telemetry: Telemetry, config: AvalancheConfig, *,
                 slots: int = 1, host: str = "127.0.0.1", port: int = 0,
                 public_url: str | None = None, advertise: str | None = None,
                 retention_s: float = 7 * 86400,
                 metrics: ServiceMetrics | None = None,
                 mounts: Sequence[Callable[[web.Application], None]] = (),
                 features: Sequence[str] = (), memory_mb: int | None = None,
                 disk_mb: int | None = None, heartbeat_s: float = HEARTBEAT_S) -> None:
        self.name = f"avalanche-{config.builder}"
        self.bus = bus
        self.telemetry = telemetry
        self.config = config
        self.slots = slots
        self.features = tuple(sorted(set(features)))
        self.memory_mb, self.disk_mb = memory_mb, disk_mb
        self.heartbeat_s = heartbeat_s
        self.boot = uuid.uuid4().hex
        self.draining = False
        self._host, self._port, self._public_url = host, port, public_url
        self._advertise = advertise
        self.store = ArtefactStore(config.artefacts_dir, retention_s=retention_s)
        self._server = ArtefactServer(self.store, public_url, mounts)
        self.metrics = metrics
        #: Assignments claimed and waiting for summit's admission, by task id.
        self._claims: dict[int, p.TaskReady] = {}
        self._running: dict[int, RunningBuild] = {}
        self._finishing: set[asyncio.Task[None]] = set()
        self._consumer: Consumer | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._stopping = False
        self.builds_done = 0
        self.refused = 0

    @property
    def source(self) -> str:
        return f"cairn/avalanche/{self.config.builder}"

    def running(self) -> list[int]:
        """The tasks building now."""
        return sorted(self._running)

    async def start(self) -> None:
        stale = await asyncio.to_thread(remove_stale_trees, self.config)
        if stale:
            log.info("avalanche.stale_trees_removed", count=stale)
        base_url = await self._server.start(self._host, self._port, self._advertise)
        self.store.base_url = (self._public_url or base_url).rstrip("/")
        self._announce()
        self._consumer = await self.bus.subscribe(builder_subscription(self.config.builder),
                                                  self._on_event)
        self._heartbeat = asyncio.create_task(self._beat(), name=f"{self.name}-heartbeat")
        log.info("avalanche.ready", builder=self.config.builder, arch=self.config.arch,
                 artefacts=self.store.base_url, slots=self.slots, boot=self.boot)

    # -- presence ----------------------------------------------------------------------
    def _announce(self) -> None:
        """The live presence on MQTT, for the dashboard."""
        state = BuilderState.DRAINING if self.draining else \
            BuilderState.BUILDING if self._running else BuilderState.ONLINE
        self.telemetry.publish(
            builder_status_topic(self.config.builder),
            status_payload(self.config.builder, self.config.arch, state,
                           sorted(self._running), self.slots),
            retain=True)

    def report(self, state: p.BuilderState | None = None) -> p.BuilderSeen:
        """What this builder tells summit about itself now."""
        if state is None:
            state = p.BuilderState.DRAINING if self.draining else p.BuilderState.ONLINE
        return p.BuilderSeen(
            builder=self.config.builder, arch=self.config.arch, state=state, boot=self.boot,
            slots=self.slots, interval_s=self.heartbeat_s,
            running=[p.TaskAttempt(task_id=r.task.task_id, attempt=r.task.attempt)
                     for r in self._running.values()],
            claimed=[p.TaskAttempt(task_id=t.task_id, attempt=t.attempt)
                     for t in self._claims.values()],
            features=list(self.features), memory_mb=self.memory_mb, disk_mb=self.disk_mb,
            artefacts_url=self.store.base_url or None)

    async def _tell_summit(self, state: p.BuilderState | None = None) -> None:
        try:
            await self.bus.publish(new_event(self.report(state), source=self.source))
        except CairnError as exc:  # the broker is away: the next beat tries again
            log.warning("avalanche.heartbeat_failed", error=str(exc))

    async def _beat(self) -> None:
        # The heartbeat must outlive anything one beat meets: a builder that stops beating
        # loses every task summit gives it, for as long as it runs.
        while True:
            try:
                await self._tell_summit()
            except Exception:
                log.exception("avalanche.heartbeat_failed")
            await asyncio.sleep(self.heartbeat_s)

    async def drain(self, draining: bool = True) -> None:
        """Finish what runs, take nothing new (summit assigns nothing to a draining builder)."""
        self.draining = draining
        self._announce()
        await self._tell_summit()

    # -- events ------------------------------------------------------------------------
    async def _on_event(self, event: Event[Any]) -> None:
        if event.cairnreplayed:
            # A replay is for looking at what happened, not a request to build again.
            log.info("avalanche.replay_ignored", event_type=event.type)
            return
        data = event.data
        if isinstance(data, p.TaskReady):
            await self._on_assigned(data, event)
        elif isinstance(data, p.BuildAdmitted):
            await self._on_admitted(data)
        elif isinstance(data, p.TaskCancelled):
            self._on_cancelled(data)
        elif isinstance(data, p.PackagePublished | p.PublishFailed):
            self.store.release(data.task_id)
        else:
            raise RejectEvent(f"a builder's queue takes no {event.type} "
                              f"v{event.cairnversion} events")

    async def _on_assigned(self, task: p.TaskReady, event: Event[Any]) -> None:
        """Claim the assignment; the build waits for summit's admission."""
        if task.builder != self.config.builder or task.arch != self.config.arch:
            raise RejectEvent(f"task {task.task_id} is for builder {task.builder} "
                              f"({task.arch}), not {self.config.builder} ({self.config.arch})")
        running = self._running.get(task.task_id)
        if running is not None and running.task.attempt >= task.attempt:
            return
        held = self._claims.get(task.task_id)
        if held is not None and held.attempt >= task.attempt:
            return
        self._claims[task.task_id] = task
        try:
            await self.bus.publish(new_event(
                p.BuildStarted(task_id=task.task_id, builder=self.config.builder,
                               arch=task.arch, attempt=task.attempt),
                source=self.source, causation=event))
        except BaseException:
            self._claims.pop(task.task_id, None)
            raise
        log.info("avalanche.claimed", task_id=task.task_id, attempt=task.attempt,
                 source=task.source)

    async def _on_admitted(self, admitted: p.BuildAdmitted) -> None:
        task = self._claims.get(admitted.task_id)
        if task is None or task.attempt != admitted.attempt or self._stopping:
            return
        del self._claims[admitted.task_id]
        self._start(task)
        self._announce()
        await self._tell_summit()

    def _on_cancelled(self, cancelled: p.TaskCancelled) -> None:
        def applies(attempt: int) -> bool:
            return cancelled.attempt is None or cancelled.attempt == attempt

        claim = self._claims.get(cancelled.task_id)
        if claim is not None and applies(claim.attempt):
            del self._claims[cancelled.task_id]
            self.refused += 1
            log.info("avalanche.not_started", task_id=cancelled.task_id,
                     attempt=claim.attempt, source=claim.source,
                     reason=f"summit cancelled the task before it started: {cancelled.reason}")
        running = self._running.get(cancelled.task_id)
        if running is not None and applies(running.task.attempt):
            log.info("avalanche.cancelling", task_id=cancelled.task_id,
                     reason=cancelled.reason)
            running.cancel(cancelled.reason)

    # -- building ----------------------------------------------------------------------
    def _start(self, task: p.TaskReady) -> None:
        topic = task_log_topic(task.task_id)
        running = start_build(task, self.config,
                              lambda line: self.telemetry.publish(topic, line.encode()))
        self._running[task.task_id] = running
        finishing = asyncio.create_task(self._finish(running),
                                        name=f"{self.name}-task-{task.task_id}")
        self._finishing.add(finishing)
        finishing.add_done_callback(self._finishing.discard)
        log.info("avalanche.building", task_id=task.task_id, attempt=task.attempt,
                 source=task.source, build_id=running.build_id)

    async def _finish(self, running: RunningBuild) -> None:
        """Wait for the build, then report it until the broker confirms the report."""
        task = running.task
        with structlog.contextvars.bound_contextvars(task_id=task.task_id, source=task.source):
            try:
                result = await running.wait()
            finally:
                self._running.pop(task.task_id, None)
                self._announce()
            done = self.store.build_done(task, result, self.config.builder)
            if result.outcome is p.Outcome.CANCELLED and running.cancel_reason:
                done = msgspec.structs.replace(done,
                                               reason=f"cancelled: {running.cancel_reason}")
            await self._report(new_event(done, source=self.source))
            self.builds_done += 1
            if self.metrics is not None:
                self.metrics.observe_build(str(result.outcome), result.duration_s)
            log.info("avalanche.build_done", outcome=result.outcome, reason=result.reason,
                     duration_s=round(result.duration_s, 3))
            await self._tell_summit()

    async def _report(self, event: Event[Any]) -> None:
        """Publish a finished build's report, however long the broker is away: the build is
        done and only this report tells summit so."""
        delay = 0.5
        while True:
            try:
                await self.bus.publish(event)
                return
            except CairnError as exc:
                log.warning("avalanche.report_retry", error=str(exc), delay_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, REPORT_RETRY_MAX_S)

    # -- stopping ----------------------------------------------------------------------
    async def stop(self, timeout: float = 10.0) -> None:
        """Stop taking work, stop what runs (each reports ``cancelled`` and summit gives it
        to another builder), say ``offline``, close."""
        self._stopping = True
        if self._consumer is not None:
            await self._consumer.cancel(timeout)
            self._consumer = None
        for running in list(self._running.values()):
            running.cancel("the builder is shutting down")
        if self._finishing:
            _, pending = await asyncio.wait(set(self._finishing), timeout=timeout)
            for task in pending:
                task.cancel()
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None
        self._claims.clear()
        await self._tell_summit(p.BuilderState.OFFLINE)
        self.telemetry.publish(
            builder_status_topic(self.config.builder),
            status_payload(self.config.builder, self.config.arch, BuilderState.OFFLINE, [],
                           self.slots),
            retain=True)
        await self._server.stop()
