"""A daemon's life: start, say ready, keep the watchdog fed, stop cleanly on a signal.

Why one function for every service: the shutdown order matters and is easy to get wrong.
On SIGTERM (systemd stop) or SIGINT (Ctrl-C) we first tell systemd ``STOPPING=1`` — so it
does not mistake a slow drain for a hang — and only then ask the service to stop: stop
consuming, let in-flight handlers finish up to a timeout (unfinished deliveries stay
unacknowledged and go to another consumer), flush the outbox, close connections. A second
signal during the drain aborts it.

Exit codes: 0 after a clean shutdown; 1 when stopping failed or timed out, or when the
service ended on its own with an error (systemd's ``Restart=on-failure`` then restarts it).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from typing import Any, Protocol

import structlog

from daemon.runtime.health import Health, HealthServer, Phase
from daemon.runtime.sdnotify import Notifier

log = structlog.get_logger("cairn.lifecycle")

#: Seconds added to the service's own stop timeout before we give up on it.
STOP_GRACE = 5.0
EXIT_OK = 0
EXIT_FAILED = 1


class Service(Protocol):
    """What :func:`run_service` drives. ``stop`` must honour its timeout (seconds).

    A service may also have ``async def wait(self) -> None`` that returns (or raises) when
    it ends on its own, e.g. a fatal loss of its database; the daemon then stops and exits.
    """

    @property
    def name(self) -> str: ...

    async def start(self) -> None: ...

    async def stop(self, timeout: float) -> None: ...


async def run_service(
    service: Service,
    *,
    stop_timeout: float = 30.0,
    notifier: Notifier | None = None,
    health_server: HealthServer | None = None,
    health: Health | None = None,
    signals: Sequence[signal.Signals] = (signal.SIGTERM, signal.SIGINT),
) -> int:
    """Run ``service`` until a signal (or its own end); return the process exit code.

    ``health`` (default: the health server's) is told the phase: readiness is 503 while the
    service starts and from the moment it is asked to stop."""
    notifier = notifier if notifier is not None else Notifier()
    if health is None and health_server is not None:
        health = health_server.health
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    received: list[str] = []

    def on_signal(sig: signal.Signals) -> None:
        received.append(sig.name)
        stop_requested.set()

    for sig in signals:
        loop.add_signal_handler(sig, on_signal, sig)
    bound = structlog.contextvars.bound_contextvars(service=service.name)
    try:
        with bound:
            return await _lifecycle(
                service, notifier, health_server, health, stop_requested, received,
                stop_timeout)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


async def _lifecycle(
    service: Service,
    notifier: Notifier,
    health_server: HealthServer | None,
    health: Health | None,
    stop_requested: asyncio.Event,
    received: list[str],
    stop_timeout: float,
) -> int:
    def phase(now: Phase) -> None:
        if health is not None:
            health.phase = now

    notifier.status(f"starting {service.name}")
    phase(Phase.STARTING)
    if health_server is not None:
        await health_server.start()
    try:
        try:
            ended_with = await _start_and_wait(service, notifier, stop_requested,
                                               lambda: phase(Phase.RUNNING))
        except Exception as exc:
            log.error("service.start_failed", error=f"{type(exc).__name__}: {exc}")
            phase(Phase.STOPPING)
            notifier.stopping(f"{service.name} failed to start")
            await _stop(service, stop_timeout, stop_requested, received)  # release what started
            raise
        reason = f"signal {received[0]}" if received else "service ended"
        phase(Phase.STOPPING)
        notifier.stopping(f"stopping {service.name} ({reason})")
        log.info("service.stopping", reason=reason)
        stopped = await _stop(service, stop_timeout, stop_requested, received)
    finally:
        if health_server is not None:
            await health_server.stop()
    if ended_with is not None:
        log.error("service.failed", error=f"{type(ended_with).__name__}: {ended_with}")
        return EXIT_FAILED
    log.info("service.stopped", clean=stopped)
    return EXIT_OK if stopped else EXIT_FAILED


async def _start_and_wait(
    service: Service, notifier: Notifier, stop_requested: asyncio.Event,
    running: Callable[[], None],
) -> BaseException | None:
    """Start (abandoned if a signal comes first), say READY, wait; the error it ended with."""
    started = await _first(service.start(), stop_requested)
    if not started:
        return None
    running()
    notifier.ready(f"{service.name} running")
    log.info("service.ready", watchdog_s=notifier.watchdog_interval)
    watchdog = asyncio.create_task(notifier.run_watchdog(), name="cairn-watchdog")
    wait: Callable[[], Awaitable[None]] | None = getattr(service, "wait", None)
    try:
        if wait is None:
            await stop_requested.wait()
            return None
        try:
            await _first(wait(), stop_requested)
        except Exception as exc:
            return exc
        return None
    finally:
        watchdog.cancel()
        with suppress(asyncio.CancelledError):
            await watchdog


async def _first(work: Awaitable[Any], stop_requested: asyncio.Event) -> bool:
    """Run ``work`` unless a stop is requested first (then cancel it); True if it finished."""
    task = asyncio.ensure_future(work)
    stopper = asyncio.create_task(stop_requested.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if not task.done():
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
    if task.cancelled():
        return False
    task.result()  # re-raise what it failed with
    return True


async def _stop(
    service: Service, timeout: float, stop_requested: asyncio.Event, received: list[str]
) -> bool:
    """Stop within ``timeout`` (+ grace); a second signal aborts. True when it stopped cleanly."""
    stop_requested.clear()
    signals_before = len(received)
    stopping = asyncio.ensure_future(service.stop(timeout))
    aborter = asyncio.create_task(stop_requested.wait())
    try:
        done, _ = await asyncio.wait(
            {stopping, aborter}, timeout=timeout + STOP_GRACE, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        aborter.cancel()
    if stopping in done:
        error = stopping.exception()
        if error is not None:
            log.error("service.stop_failed", error=f"{type(error).__name__}: {error}")
        return error is None
    stopping.cancel()
    with suppress(asyncio.CancelledError, Exception):
        await stopping
    if len(received) > signals_before:
        log.warning("service.stop_aborted", signal=received[-1])
    else:
        log.error("service.stop_timed_out", timeout_s=timeout + STOP_GRACE)
    return False
