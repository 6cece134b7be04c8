"""The live side of summit's face: builder presence, build logs and task changes, relayed
to browsers as server-sent events.

Why it is shaped this way:

* Telemetry (MQTT or in-process) is subscribed once per summit, not once per browser; the
  last lines of each task's log are kept in a bounded ring buffer so that a page opened in
  the middle of a build shows what came before, and an SSE stream resumes without gaps or
  duplicates (every line has a sequence number, sent as the SSE ``id``).
* Task changes are read from summit's own ``timeline`` table (every state change writes a
  row in the same transaction as the change), polled by sequence number: a committed change
  is never missed, and an uncommitted (rolled back) one is never shown.
* Every subscriber has a bounded queue; a browser that does not read is dropped rather than
  allowed to grow summit's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from daemon.summit import queries
from daemon.summit.planning.views import counts, explain_task
from daemon.summit.service import Summit
from daemon.summit.web.numbers import whole
from events.names import BUILDER_STATUS_WILDCARD, TASK_LOG_WILDCARD
from events.telemetry import Message, Telemetry

log = structlog.get_logger("cairn.summit.live")

#: Lines kept per task, and tasks kept (least recently written dropped first).
LOG_LINES = 5000
LOG_TASKS = 200
#: The longest log line summit keeps and relays, in bytes. Builders cut their lines at 4096
#: characters, but a message on the log topic is whatever reached the broker: a 20 MB line
#: must not be kept 5000 times per task and sent to every browser.
LINE_MAX_BYTES = 16 * 1024
#: Undelivered messages a subscriber may have before it is dropped.
SUBSCRIBER_QUEUE = 1000
#: How often the timeline is read for task changes.
POLL_INTERVAL = 0.25


@dataclass(frozen=True)
class Line:
    seq: int
    text: str


@dataclass
class TaskLog:
    """The last lines of one task's log; ``next_seq`` counts every line ever received."""

    lines: deque[Line] = field(default_factory=lambda: deque(maxlen=LOG_LINES))
    next_seq: int = 0
    updated: float = field(default_factory=time.time)

    def add(self, text: str) -> Line:
        line = Line(self.next_seq, text)
        self.lines.append(line)
        self.next_seq += 1
        self.updated = time.time()
        return line

    def after(self, seq: int) -> list[Line]:
        """Lines numbered ``seq`` and later that are still kept."""
        return [line for line in self.lines if line.seq >= seq]

    @property
    def first_seq(self) -> int:
        return self.lines[0].seq if self.lines else self.next_seq


class LogBuffer:
    """Ring buffers for the most recently written task logs."""

    def __init__(self, tasks: int = LOG_TASKS, lines: int = LOG_LINES) -> None:
        self._logs: OrderedDict[int, TaskLog] = OrderedDict()
        self._tasks = tasks
        self._lines = lines

    def add(self, task_id: int, text: str) -> Line:
        entry = self._logs.get(task_id)
        if entry is None:
            entry = TaskLog(lines=deque(maxlen=self._lines))
            self._logs[task_id] = entry
            while len(self._logs) > self._tasks:
                self._logs.popitem(last=False)
        self._logs.move_to_end(task_id)
        return entry.add(text)

    def get(self, task_id: int) -> TaskLog | None:
        return self._logs.get(task_id)


def sse(event: str, data: Any, event_id: int | None = None) -> bytes:
    """One server-sent event (JSON data on one line)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def task_id_of_log_topic(topic: str) -> int | None:
    """``cairn/tasks/<id>/log`` → id (None for anything else)."""
    parts = topic.split("/")
    if len(parts) == 4 and parts[1] == "tasks" and parts[3] == "log":
        return whole(parts[2])
    return None


Outgoing = tuple[str, Any, int | None]


class Subscriber:
    """One browser's stream: a bounded queue of (event, data, id); None ends it."""

    def __init__(self, accepts: Callable[[str, Any], bool]) -> None:
        self.accepts = accepts
        self.queue: asyncio.Queue[Outgoing | None] = asyncio.Queue(SUBSCRIBER_QUEUE)
        self.dropped = False

    def offer(self, event: str, data: Any, event_id: int | None = None) -> None:
        if self.dropped or not self.accepts(event, data):
            return
        try:
            self.queue.put_nowait((event, data, event_id))
        except asyncio.QueueFull:
            self.dropped = True  # a reader this slow reconnects and starts afresh
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.queue.put_nowait(None)

    def close(self) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(None)


class Live:
    """Watches telemetry and the timeline; fans out to subscribers."""

    def __init__(self, summit: Summit, telemetry: Telemetry | None, *,
                 poll_interval: float = POLL_INTERVAL) -> None:
        self.summit = summit
        self.telemetry = telemetry
        self.poll_interval = poll_interval
        self.builders: dict[str, dict[str, Any]] = {}
        self.logs = LogBuffer()
        self._subscribers: set[Subscriber] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._last_seq = 0

    @classmethod
    def offline(cls, summit: Summit) -> Live:
        """A Live that is never started: no builders, no logs, streams that stay quiet."""
        return cls(summit, None)

    async def start(self) -> None:
        self._last_seq = await queries.timeline_last_seq(self.summit.db)
        self._tasks = [asyncio.create_task(self._poll(), name="live-timeline")]
        if self.telemetry is not None:
            self._tasks += [
                asyncio.create_task(self._watch(self.telemetry, BUILDER_STATUS_WILDCARD,
                                                self._on_status), name="live-builders"),
                asyncio.create_task(self._watch(self.telemetry, TASK_LOG_WILDCARD,
                                                self._on_log), name="live-logs"),
            ]

    def close_streams(self) -> None:
        """End every browser's stream (so the HTTP server need not wait for them)."""
        for subscriber in list(self._subscribers):
            subscriber.close()

    async def stop(self) -> None:
        """End every stream and stop watching."""
        self.close_streams()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    # -- subscribers ----------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def subscribe(self, accepts: Callable[[str, Any], bool]
                        ) -> AsyncIterator[Subscriber]:
        subscriber = Subscriber(accepts)
        self._subscribers.add(subscriber)
        try:
            yield subscriber
        finally:
            self._subscribers.discard(subscriber)

    def _emit(self, event: str, data: Any, event_id: int | None = None) -> None:
        for subscriber in list(self._subscribers):
            subscriber.offer(event, data, event_id)

    # -- telemetry ------------------------------------------------------------------------
    @staticmethod
    async def _watch(telemetry: Telemetry, pattern: str,
                     handler: Callable[[Message], None]) -> None:
        async for message in telemetry.subscribe(pattern):
            try:
                handler(message)
            except Exception as exc:  # one bad message must not end the watch
                log.warning("live.bad_message", topic=message.topic, error=repr(exc))

    def _on_status(self, message: Message) -> None:
        data = json.loads(message.payload)
        if not isinstance(data, dict) or not isinstance(data.get("builder"), str):
            raise ValueError("a builder status is a JSON object with a builder name")
        self.builders[data["builder"]] = data
        self._emit("builder", self.builder_json(data))

    def _on_log(self, message: Message) -> None:
        task_id = task_id_of_log_topic(message.topic)
        if task_id is None:
            return
        payload = message.payload
        cut = len(payload) - LINE_MAX_BYTES
        text = payload[:LINE_MAX_BYTES].decode("utf-8", errors="replace").rstrip("\n")
        if cut > 0:
            text += f" [... line cut by summit: {cut} more bytes]"
        line = self.logs.add(task_id, text)
        self._emit("log", {"task": task_id, "seq": line.seq, "text": line.text}, line.seq)

    def builder_json(self, status: dict[str, Any]) -> dict[str, Any]:
        """A builder's presence, with the sources of the tasks it is building."""
        running = []
        for task_id in status.get("tasks") or []:
            task = self.summit.scheduler.task(task_id) if isinstance(task_id, int) else None
            running.append({"id": task_id, "source": task.source if task else None,
                            "state": str(task.state) if task else None})
        state = status.get("state", "unknown")
        if state == "online" and status["builder"] in self.summit.scheduler.levers.drained:
            state = "draining"  # an operator drained it: summit gives it nothing new
        return {"builder": status["builder"], "arch": status.get("arch"),
                "state": state, "tasks": running,
                "slots": status.get("slots"), "time": status.get("time")}

    # -- task changes ---------------------------------------------------------------------
    async def _poll(self) -> None:
        while True:
            try:
                await self.poll_once()
            except Exception as exc:  # a locked or closing database: try again later
                log.warning("live.poll_failed", error=repr(exc))
            await asyncio.sleep(self.poll_interval)

    async def poll_once(self) -> int:
        """Relay timeline rows written since the last call; returns how many."""
        rows = await queries.timeline_since(self.summit.db, self._last_seq)
        if not rows:
            return 0
        self._last_seq = int(rows[-1]["seq"])
        if not self._subscribers:
            return len(rows)
        for row in rows:
            task = self.summit.scheduler.task(row["task_id"])
            if task is None:
                continue
            planner = self.summit.scheduler.planners[(task.repository, task.arch)]
            self._emit("task", {
                "entry": row,
                "task": queries.task_json(task, blockers=[
                    e.to_json() for e in explain_task(task, planner)]),
            }, int(row["seq"]))
        self._emit("counts", counts(self.summit.scheduler.all_tasks()))
        return len(rows)
