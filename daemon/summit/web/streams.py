"""Server-sent event streams: the dashboard's live updates and a task's live log.

A stream subscribes to :class:`daemon.summit.web.live.Live` *before* it sends what is already
known (counts and builders, or the kept log lines), so nothing that happens in between is
lost; log lines carry their sequence number as the SSE ``id``, so a browser reconnecting
with ``Last-Event-ID`` gets exactly the lines it has not seen. A comment line every
:data:`HEARTBEAT` seconds keeps proxies from closing an idle stream. When summit shuts down
every stream is ended (``Live.close_streams``) so the server does not wait for browsers.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from daemon.summit.planning.views import counts
from daemon.summit.web.live import Live, Subscriber, sse
from daemon.summit.web.numbers import whole

HEARTBEAT = 15.0
UPDATE_EVENTS = frozenset({"task", "counts", "builder"})


async def _open(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no"})
    await response.prepare(request)
    return response


async def _pump(response: web.StreamResponse, subscriber: Subscriber, skip_before: int = -1
                ) -> None:
    """Forward the subscriber's events until it is closed or the browser goes away."""
    while True:
        try:
            item = await asyncio.wait_for(subscriber.queue.get(), HEARTBEAT)
        except TimeoutError:
            await response.write(b": keep-alive\n\n")
            continue
        if item is None:
            return
        event, data, event_id = item
        if event == "log" and event_id is not None and event_id < skip_before:
            continue  # already sent from the ring buffer
        await response.write(sse(event, data, event_id))


def _resume_from(request: web.Request, after: int) -> int:
    """``Last-Event-ID`` (a reconnecting EventSource) wins over ``?after=``."""
    last = request.headers.get("Last-Event-ID", "")
    seq = whole(last)
    return seq + 1 if seq is not None else after


async def stream_updates(request: web.Request, live: Live) -> web.StreamResponse:
    """Task changes, counts by state and builder presence, for every page."""
    async with live.subscribe(lambda event, _: event in UPDATE_EVENTS) as subscriber:
        response = await _open(request)
        try:
            await response.write(sse("counts", counts(live.summit.scheduler.all_tasks())))
            for name in sorted(live.builders):
                await response.write(sse("builder", live.builder_json(live.builders[name])))
            await _pump(response, subscriber)
        except ConnectionResetError:
            pass
    return response


async def stream_log(request: web.Request, live: Live, task_id: int,
                     after: int) -> web.StreamResponse:
    """One task's log lines (kept ones first, from ``after``) and task changes (its own,
    and those of the tasks its page shows: a page needs one stream, not two)."""
    def accepts(event: str, data: Any) -> bool:
        if event == "log":
            return bool(data["task"] == task_id)
        return event == "task"

    start = _resume_from(request, after)
    async with live.subscribe(accepts) as subscriber:
        response = await _open(request)
        kept = live.logs.get(task_id)
        next_seq = start
        try:
            if kept is not None and kept.first_seq > start:
                await response.write(sse("truncated", {"first_seq": kept.first_seq}))
            for line in kept.after(start) if kept else []:
                await response.write(sse("log", {"task": task_id, "seq": line.seq,
                                                 "text": line.text}, line.seq))
                next_seq = line.seq + 1
            await _pump(response, subscriber, next_seq)
        except ConnectionResetError:
            pass
    return response
