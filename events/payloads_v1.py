"""Version 1 of the payloads that version 2 replaced: ``task-ready``, ``build-done`` and
``task-cancelled``.

Frozen: these structs generate ``schemas/*.v1.json``, which are published and immutable.
They are kept so that recorded runs and old messages still decode (``cairn events ls``, the
journal, replay); no service produces them any more. Never edit them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import msgspec

from events.payloads import (
    Arch,
    Commit,
    Name,
    NonEmpty,
    Release,
    Sha256,
    Size,
    TaskId,
    Url,
    _Payload,
)


class Outcome(StrEnum):
    SUCCESS = "success"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    #: The build could not run for a reason that is not the recipe's (disk, network, ...).
    INFRASTRUCTURE = "infrastructure"


class Artefact(_Payload, frozen=True):
    """One file a builder serves for vessel to pull."""

    name: Name
    filename: NonEmpty
    url: Url
    sha256: Sha256
    size: Size


class TaskReady(_Payload, frozen=True):
    """A build whose dependencies are all published may start."""

    task_id: TaskId
    source: Name
    version: NonEmpty
    release: Release
    arch: Arch
    repository: Name
    repository_url: Url
    commit: Commit
    recipe_path: NonEmpty
    channel: Name = "volatile"
    build_release: Annotated[int, msgspec.Meta(ge=1)] = 1
    reason: NonEmpty = "new"
    critical_path: Annotated[int, msgspec.Meta(ge=0)] = 0
    #: Where the builder fetches build dependencies: the channel's index URL.
    index_url: Url | None = None


class BuildDone(_Payload, frozen=True):
    """A build finished, whatever its outcome."""

    task_id: TaskId
    builder: Name
    source: Name
    version: NonEmpty
    release: Release
    build_release: Annotated[int, msgspec.Meta(ge=1)]
    arch: Arch
    outcome: Outcome
    reason: NonEmpty | None = None
    log_url: Url | None = None
    artefacts: list[Artefact] = msgspec.field(default_factory=list)
    duration_s: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    channel: Name = "volatile"


class TaskCancelled(_Payload, frozen=True):
    """Summit asks whichever builder runs this task to stop it."""

    task_id: TaskId
    arch: Arch
    reason: NonEmpty = "cancelled by an operator"
