"""The builder service: a thin shell around :mod:`daemon.avalanche.runner`.

For each ``task-ready`` taken from the work queue (prefetch = build slots): publish
``build-started``, build, publish ``build-done`` and wait for its confirm, and only then
return so the bus acknowledges the task. A builder that dies before that point leaves the task
unacknowledged and the broker gives it to another builder. Log lines and presence go to
telemetry as they happen.
"""

from __future__ import annotations

import asyncio
import json
import time
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
from events.names import builder_status_topic, task_log_topic
from events.telemetry import Telemetry
from events.topology import control, work

log = structlog.get_logger("cairn.avalanche")


class BuilderState(StrEnum):
    ONLINE = "online"
    BUILDING = "building"
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
                 mounts: Sequence[Callable[[web.Application], None]] = ()) -> None:
        self.name = f"avalanche-{config.builder}"
        self.bus = bus
        self.telemetry = telemetry
        self.config = config
        self.slots = slots
        self._host, self._port, self._public_url = host, port, public_url
        self._advertise = advertise
        self.store = ArtefactStore(config.artefacts_dir, retention_s=retention_s)
        self._server = ArtefactServer(self.store, public_url, mounts)
        self.metrics = metrics
        self._running: dict[int, RunningBuild] = {}
        self._consumers: list[Consumer] = []
        self.builds_done = 0

    @property
    def source(self) -> str:
        return f"cairn/avalanche/{self.config.builder}"

    async def start(self) -> None:
        stale = await asyncio.to_thread(remove_stale_trees, self.config)
        if stale:
            log.info("avalanche.stale_trees_removed", count=stale)
        base_url = await self._server.start(self._host, self._port, self._advertise)
        self.store.base_url = (self._public_url or base_url).rstrip("/")
        self._announce()
        self._consumers.append(await self.bus.subscribe(
            control(self.config.builder, self.config.arch), self._on_control))
        self._consumers.append(await self.bus.subscribe(
            work(self.config.arch, self.slots), self._on_task))
        log.info("avalanche.ready", builder=self.config.builder, arch=self.config.arch,
                 artefacts=self.store.base_url, slots=self.slots)

    def _announce(self) -> None:
        state = BuilderState.BUILDING if self._running else BuilderState.ONLINE
        self.telemetry.publish(
            builder_status_topic(self.config.builder),
            status_payload(self.config.builder, self.config.arch, state,
                           sorted(self._running), self.slots),
            retain=True)

    async def _on_task(self, event: Event[Any]) -> None:
        task: p.TaskReady = event.data
        if event.cairnreplayed:
            # A replay is for looking at what happened, not a request to build again.
            log.info("avalanche.replay_ignored", task_id=task.task_id)
            return
        with structlog.contextvars.bound_contextvars(task_id=task.task_id, source=task.source):
            await self.bus.publish(new_event(
                p.BuildStarted(task_id=task.task_id, builder=self.config.builder,
                               arch=task.arch), source=self.source, causation=event))
            topic = task_log_topic(task.task_id)
            running = start_build(task, self.config,
                                  lambda line: self.telemetry.publish(topic, line.encode()))
            self._running[task.task_id] = running
            self._announce()
            try:
                result = await running.wait()
            except asyncio.CancelledError:
                running.cancel("the builder is shutting down")
                raise
            finally:
                self._running.pop(task.task_id, None)
                self._announce()
            done = self.store.build_done(task, result, self.config.builder)
            if result.outcome is p.Outcome.CANCELLED and running.cancel_reason:
                done = _with_reason(done, running.cancel_reason)
            await self.bus.publish(new_event(done, source=self.source, causation=event))
            self.builds_done += 1
            if self.metrics is not None:
                self.metrics.observe_build(str(result.outcome), result.duration_s)
            log.info("avalanche.build_done", outcome=result.outcome, reason=result.reason,
                     duration_s=round(result.duration_s, 3))

    async def _on_control(self, event: Event[Any]) -> None:
        data = event.data
        if event.cairnreplayed:
            return
        if isinstance(data, p.TaskCancelled):
            running = self._running.get(data.task_id)
            if running is not None:
                log.info("avalanche.cancelling", task_id=data.task_id, reason=data.reason)
                running.cancel(data.reason)
        elif isinstance(data, p.PackagePublished | p.PublishFailed):
            self.store.release(data.task_id)

    async def stop(self, timeout: float = 10.0) -> None:
        consumers, self._consumers = self._consumers, []
        await asyncio.gather(*(c.cancel(timeout) for c in consumers))
        for running in list(self._running.values()):
            running.cancel("the builder is shutting down")
        self.telemetry.publish(
            builder_status_topic(self.config.builder),
            status_payload(self.config.builder, self.config.arch, BuilderState.OFFLINE, [],
                           self.slots),
            retain=True)
        await self._server.stop()


def _with_reason(done: p.BuildDone, reason: str) -> p.BuildDone:
    return msgspec.structs.replace(done, reason=f"cancelled: {reason}")
