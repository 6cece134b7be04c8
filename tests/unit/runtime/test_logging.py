"""Logging: JSON lines off a terminal, ids bound by the bus on every line of a handler."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from daemon.runtime.config import LogFormat, LogLevel, LogSection
from daemon.runtime.logging import configure_logging, reset_logging
from events.bus import Subscription
from events.consume import Disposition, process
from events.envelope import Event, encode_event, new_event
from events.payloads import BuildStarted


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    yield
    reset_logging()


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_handler_lines_carry_the_event_ids() -> None:
    stream = io.StringIO()
    configure_logging(LogSection(level=LogLevel.INFO), service="summit", stream=stream)
    event = new_event(BuildStarted(task_id=9, builder="b1", arch="x86_64"), source="test")

    async def handler(received: Event[Any]) -> None:
        structlog.get_logger("handler").info("task.started", task_id=received.data.task_id)

    verdict = await process(encode_event(event), event.routing_key, Subscription("q", ("#",)),
                            handler)
    assert verdict.disposition is Disposition.ACK
    structlog.get_logger("after").info("outside")
    inside, outside = lines(stream)
    assert inside["event"] == "task.started" and inside["task_id"] == 9
    assert inside["event_id"] == event.id
    assert inside["event_type"] == "build-started"
    assert inside["correlation_id"] == event.correlationid
    assert inside["service"] == "summit" and inside["level"] == "info"
    assert "timestamp" in inside
    assert "event_id" not in outside  # unbound once the handler returned


def test_level_filters_and_stdlib_is_routed() -> None:
    stream = io.StringIO()
    configure_logging(LogSection(level=LogLevel.WARNING), stream=stream)
    log = structlog.get_logger("x")
    log.info("hidden")
    log.warning("shown", n=1)
    logging.getLogger("aio_pika").warning("connection %s lost", "amqp://x")
    logging.getLogger("aio_pika").info("reconnected")
    found = lines(stream)
    assert [entry["event"] for entry in found] == ["shown", "connection amqp://x lost"]
    assert found[1]["logger"] == "aio_pika" and found[1]["level"] == "warning"


def test_console_on_a_terminal_and_forced_formats() -> None:
    terminal = Terminal()
    configure_logging(LogSection(), stream=terminal)
    structlog.get_logger("x").info("hello", key="v")
    text = terminal.getvalue()
    assert "hello" in text and "key" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])

    forced = Terminal()
    configure_logging(LogSection(format=LogFormat.JSON), stream=forced)
    structlog.get_logger("x").info("hello")
    assert lines(forced)[0]["event"] == "hello"


def test_exceptions_are_structured_in_json() -> None:
    stream = io.StringIO()
    configure_logging(LogSection(), stream=stream)
    try:
        raise ValueError("bad recipe")
    except ValueError:
        structlog.get_logger("x").exception("failed")
    (entry,) = lines(stream)
    assert entry["exception"][0]["exc_type"] == "ValueError"
    assert entry["exception"][0]["exc_value"] == "bad recipe"
