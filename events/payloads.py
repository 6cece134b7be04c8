"""Typed payloads (the envelope's ``data``) of every event type, version 1.

These frozen structs mirror the JSON Schema files in ``schemas/``; ``tests/unit/
test_schemas.py`` keeps the two in step. A breaking change is a new struct and a new
schema version published beside the old one, never an edit of these.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import msgspec

NonEmpty = Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]
#: Source, package, repository and builder names. They become file names (archives, manifest
#: paths), so no "/" and no leading "." ever; ``daemon.package.check_name`` applies the same.
NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$"
NAME_MAX_LENGTH = 256
Name = Annotated[str, msgspec.Meta(pattern=NAME_PATTERN, max_length=NAME_MAX_LENGTH)]
Arch = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_]+$", max_length=64)]
Sha256 = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]
Commit = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{40}([0-9a-f]{24})?$")]
TaskId = Annotated[int, msgspec.Meta(ge=1)]
Release = Annotated[int, msgspec.Meta(ge=0)]
Size = Annotated[int, msgspec.Meta(ge=0)]
Url = Annotated[str, msgspec.Meta(min_length=1, max_length=8192)]


class _Payload(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every payload: immutable, keyword-only, unknown fields refused."""


class SeenVia(StrEnum):
    POLL = "poll"
    WEBHOOK = "webhook"
    REQUEST = "request"
    START = "start"


class CommitSeen(_Payload, frozen=True):
    """A watched repository's branch now points at ``new_commit``."""

    repository: Name
    url: Url
    branch: NonEmpty
    new_commit: Commit
    old_commit: Commit | None = None
    arches: list[Arch] = msgspec.field(default_factory=list)
    seen_via: SeenVia = SeenVia.POLL


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


class BuildStarted(_Payload, frozen=True):
    """A builder accepted a task."""

    task_id: TaskId
    builder: Name
    arch: Arch
    attempt: Annotated[int, msgspec.Meta(ge=1)] = 1


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


class PublishedPackage(_Payload, frozen=True):
    """One package now listed in a channel's index."""

    name: Name
    version: NonEmpty
    release: Release
    build_release: Annotated[int, msgspec.Meta(ge=1)]
    sha256: Sha256
    provides: list[NonEmpty] = msgspec.field(default_factory=list)


class PackagePublished(_Payload, frozen=True):
    """A build's packages are in the repository index, as of ``generation``."""

    task_id: TaskId
    source: Name
    release: Release
    build_release: Annotated[int, msgspec.Meta(ge=1)]
    arch: Arch
    channel: Name
    generation: Annotated[int, msgspec.Meta(ge=1)]
    packages: list[PublishedPackage]


class PublishFailed(_Payload, frozen=True):
    """Vessel refused or could not import a build."""

    task_id: TaskId
    source: Name
    release: Release
    arch: Arch
    channel: Name
    reason: NonEmpty
    #: True when the cause is not the build's (network, disk): summit may retry it.
    retryable: bool = False


class TaskCancelled(_Payload, frozen=True):
    """Summit asks whichever builder runs this task to stop it."""

    task_id: TaskId
    arch: Arch
    reason: NonEmpty = "cancelled by an operator"


Payload = (
    CommitSeen | TaskReady | BuildStarted | BuildDone | PackagePublished | PublishFailed
    | TaskCancelled
)
