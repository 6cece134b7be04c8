"""Which payload type, schema version and subject belong to each event type.

The registry is the single table that ties an event type name to its Python payload class
and to the part of the payload that becomes the routing-key subject.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from events import payloads as p
from events import payloads_v1 as v1
from events.errors import UnknownEventType
from events.names import EventType


@dataclass(frozen=True)
class EventSpec:
    """One (type, version) of the contract."""

    type: EventType
    version: int
    payload: builtins.type[Any]
    subject: Callable[[Any], str]
    summary: str

    @property
    def schema_name(self) -> str:
        """File name of its JSON Schema inside ``schemas/``."""
        return f"{self.type}.v{self.version}.json"


def _arch(data: Any) -> str:
    return str(data.arch)


def _channel(data: Any) -> str:
    return str(data.channel)


def _builder(data: Any) -> str:
    return str(data.builder)


def _build_channel(data: Any) -> str:
    return str(data.build.channel)


SPECS: tuple[EventSpec, ...] = (
    EventSpec(EventType.COMMIT_SEEN, 1, p.CommitSeen, lambda d: str(d.repository),
              "a repository's branch now points at a new commit"),
    EventSpec(EventType.BUILDER_SEEN, 1, p.BuilderSeen, _builder,
              "a builder is alive: its capacity and the tasks it holds"),
    EventSpec(EventType.TASK_READY, 1, v1.TaskReady, _arch,
              "a build whose dependencies are all published may start"),
    EventSpec(EventType.TASK_READY, 2, p.TaskReady, _builder,
              "a build whose dependencies are all published is assigned to one builder"),
    EventSpec(EventType.BUILD_STARTED, 1, p.BuildStarted, _arch,
              "a builder accepted a task"),
    EventSpec(EventType.BUILD_ADMITTED, 1, p.BuildAdmitted, _builder,
              "summit admits a builder's claim: the build may start"),
    EventSpec(EventType.BUILD_DONE, 1, v1.BuildDone, _arch,
              "a build finished: outcome, log, artefacts with sha256 and size"),
    EventSpec(EventType.BUILD_DONE, 2, p.BuildDone, _arch,
              "a build finished: attempt, outcome, log, artefacts, environment, usage"),
    EventSpec(EventType.BUILD_DONE, 3, p.BuildDoneV3, _arch,
              "a build finished: attempt, outcome, log, artefacts, environment, usage with "
              "the disk it took"),
    EventSpec(EventType.BUILD_ACCEPTED, 1, p.BuildAccepted, _build_channel,
              "summit accepts a successful build for publication"),
    EventSpec(EventType.PACKAGE_PUBLISHED, 1, p.PackagePublished, _channel,
              "a build's packages are in the repository index"),
    EventSpec(EventType.PUBLISH_FAILED, 1, p.PublishFailed, _channel,
              "vessel refused or could not import a build, with the reason"),
    EventSpec(EventType.TASK_CANCELLED, 1, v1.TaskCancelled, _arch,
              "stop this build if you are running it"),
    EventSpec(EventType.TASK_CANCELLED, 2, p.TaskCancelled, _builder,
              "the builder a task was assigned to must stop it or not start it"),
)

_BY_KEY: dict[tuple[str, int], EventSpec] = {(s.type.value, s.version): s for s in SPECS}
_BY_PAYLOAD: dict[type[Any], EventSpec] = {s.payload: s for s in SPECS}
LATEST: dict[str, int] = {}
for _spec in SPECS:
    LATEST[_spec.type.value] = max(LATEST.get(_spec.type.value, 0), _spec.version)


def spec_for(event_type: str, version: int | None = None) -> EventSpec:
    """The spec of a type at a version (the latest when not given)."""
    if version is None:
        version = LATEST.get(event_type, 0)
    try:
        return _BY_KEY[(event_type, version)]
    except KeyError:
        known = ", ".join(sorted(LATEST))
        raise UnknownEventType(
            f"unknown event type {event_type!r} version {version} (known types: {known})",
            field="type",
        ) from None


def spec_of_payload(data: Any) -> EventSpec:
    """The spec a payload object belongs to."""
    try:
        return _BY_PAYLOAD[type(data)]
    except KeyError:
        raise UnknownEventType(f"{type(data).__name__} is not an event payload") from None
