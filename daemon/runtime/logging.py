"""Structured logging for every service: JSON lines for machines, colours for people.

Why JSON when stderr is not a terminal: under systemd the lines go to journald and from
there to whatever collects logs; one JSON object per line keeps every key (event id, task,
builder) searchable. Why ``structlog.contextvars``: the bus binds ``event_id``,
``event_type`` and ``correlation_id`` around each handler (:func:`events.consume.process`),
so every line a handler logs names the event it was handling without passing ids around.

Standard-library loggers (aio-pika, aiohttp) are routed through the same renderer, so a
service writes one format only.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog
from structlog.types import EventDict, Processor, WrappedLogger

from daemon.runtime.config import LogFormat, LogLevel, LogSection

_LEVELS = {
    LogLevel.DEBUG: logging.DEBUG,
    LogLevel.INFO: logging.INFO,
    LogLevel.WARNING: logging.WARNING,
    LogLevel.ERROR: logging.ERROR,
}


def _add_service(service: str | None) -> Processor:
    def add(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        if service is not None:
            event_dict.setdefault("service", service)
        return event_dict

    return add


def wants_json(fmt: LogFormat, stream: TextIO) -> bool:
    """JSON unless asked for the console renderer or writing to a terminal in auto mode."""
    if fmt is LogFormat.AUTO:
        return not _isatty(stream)
    return fmt is LogFormat.JSON


def configure_logging(
    config: LogSection | None = None,
    *,
    service: str | None = None,
    stream: TextIO | None = None,
) -> None:
    """Configure structlog and the standard library for one process (call once, at start)."""
    config = config or LogSection()
    stream = stream if stream is not None else sys.stderr
    level = _LEVELS[config.level]
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_service(service),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: Processor
    if wants_json(config.format, stream):
        shared.append(structlog.processors.dict_tracebacks)
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=_isatty(stream))
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    _route_stdlib(shared, renderer, level, stream)


def _route_stdlib(shared: list[Processor], renderer: Processor, level: int, stream: TextIO) -> None:
    """Send standard-library records through the same processors and renderer."""
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_cairn", False):
            root.removeHandler(old)
    handler._cairn = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)


def _isatty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(callable(isatty) and isatty())


def get_logger(name: str, **initial: Any) -> Any:
    """A structlog logger; ``initial`` values are added to every line it writes."""
    return structlog.get_logger(name, **initial)


def reset_logging() -> None:
    """Undo :func:`configure_logging` (tests; a process that hands its stream back)."""
    structlog.reset_defaults()
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_cairn", False):
            root.removeHandler(handler)
    root.setLevel(logging.WARNING)
