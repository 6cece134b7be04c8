"""Typed payloads (the envelope's ``data``) of every event type, at their latest version.

These frozen structs mirror the JSON Schema files in ``schemas/``; ``tests/unit/
test_schemas.py`` keeps the two in step. A breaking change is a new struct and a new
schema version published beside the old one, never an edit of a published one: the version
1 structs that version 2 replaced live on, frozen, in :mod:`events.payloads_v1`. A version
that only adds fields is a subclass of the one before (``BuildDoneV3`` of ``BuildDone``):
code that reads the older version reads the newer one as well.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import msgspec

from events.names import SUBJECT_RE

NonEmpty = Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]
#: Source, package, repository and builder names. They become file names (archives, manifest
#: paths), so no "/" and no leading "." ever; ``daemon.package.check_name`` applies the same.
NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$"
NAME_MAX_LENGTH = 256
Name = Annotated[str, msgspec.Meta(pattern=NAME_PATTERN, max_length=NAME_MAX_LENGTH)]
ARCH_PATTERN = r"^[A-Za-z0-9_]+$"
Arch = Annotated[str, msgspec.Meta(pattern=ARCH_PATTERN, max_length=64)]
Sha256 = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]
Commit = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{40}([0-9a-f]{24})?$")]
TaskId = Annotated[int, msgspec.Meta(ge=1)]
Release = Annotated[int, msgspec.Meta(ge=0)]
Size = Annotated[int, msgspec.Meta(ge=0)]
Url = Annotated[str, msgspec.Meta(min_length=1, max_length=8192)]
#: A URL a person or a service is sent to over HTTP (a log, an artefact, an index): only
#: ``http(s)://``, so a builder cannot plant a ``javascript:`` link on summit's dashboard.
HTTP_URL_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://[^\s]+$"
HttpUrl = Annotated[str, msgspec.Meta(pattern=HTTP_URL_PATTERN, max_length=8192)]
#: A builder's name is a routing-key subject: events addressed to it are routed by it.
BuilderName = Annotated[str, msgspec.Meta(pattern=SUBJECT_RE.pattern)]
Attempt = Annotated[int, msgspec.Meta(ge=1)]
Positive = Annotated[float, msgspec.Meta(gt=0)]


class _Payload(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every payload: immutable, keyword-only, unknown fields refused."""


class SeenVia(StrEnum):
    POLL = "poll"
    WEBHOOK = "webhook"
    REQUEST = "request"
    START = "start"


class LogOverflow(StrEnum):
    """What a build whose log passes its cap does: fail, or go on with the log cut."""

    FAIL = "fail"
    TRUNCATE = "truncate"


class CommitSeen(_Payload, frozen=True):
    """A watched repository's branch now points at ``new_commit``."""

    repository: Name
    url: Url
    branch: NonEmpty
    new_commit: Commit
    old_commit: Commit | None = None
    arches: list[Arch] = msgspec.field(default_factory=list)
    seen_via: SeenVia = SeenVia.POLL


class BuildLimits(_Payload, frozen=True):
    """When a builder stops a build on summit's behalf; ``None`` leaves the builder's own
    configured limit in force."""

    timeout_s: Positive | None = None
    #: No output at all for this long ends the build with outcome ``silent``.
    silence_s: Positive | None = None
    #: The build log's size cap; what happens past it is ``log_overflow``.
    log_bytes: Annotated[int, msgspec.Meta(ge=1)] | None = None
    log_overflow: LogOverflow = LogOverflow.FAIL
    #: The packages' total size cap (outcome ``output-limit`` past it).
    output_bytes: Annotated[int, msgspec.Meta(ge=1)] | None = None


class TaskReady(_Payload, frozen=True):
    """Summit assigns a build whose dependencies are all published to one builder.

    The builder claims it (``build-started``) and starts only once summit admits the claim
    (``build-admitted``): a task cancelled or superseded since, however late the builder
    takes this message, is refused then."""

    task_id: TaskId
    #: Which dispatch of the task this is; every report about it echoes it.
    attempt: Attempt
    builder: BuilderName
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
    priority: int = 0
    #: Where the builder fetches build dependencies: the channel's index URL.
    index_url: HttpUrl | None = None
    #: The sha256 digest of the build environment to build in; ``None``: the builder host.
    environment: Sha256 | None = None
    limits: BuildLimits | None = None


class BuildStarted(_Payload, frozen=True):
    """A builder accepted a task."""

    # A builder sends it to claim the task it was assigned (``task-ready``), and builds only
    # once summit admits the claim (``build-admitted``). The docstring above is the published
    # schema's description and stays as it is.

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
    #: No output for longer than the build's silence limit.
    SILENT = "silent"
    #: The log passed its size cap (and the build was configured to fail for it).
    LOG_LIMIT = "log-limit"
    #: The packages passed the output size cap.
    OUTPUT_LIMIT = "output-limit"


class Artefact(_Payload, frozen=True):
    """One file a builder serves for vessel to pull."""

    name: Name
    filename: NonEmpty
    url: HttpUrl
    sha256: Sha256
    size: Size


class Usage(_Payload, frozen=True):
    """What a build consumed, for its history and the next estimates."""

    cpu_s: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    max_rss_kb: Size = 0
    output_bytes: Size = 0
    log_bytes: Size = 0


class BuildDone(_Payload, frozen=True):
    """A build finished, whatever its outcome."""

    task_id: TaskId
    attempt: Attempt
    builder: BuilderName
    source: Name
    version: NonEmpty
    release: Release
    build_release: Annotated[int, msgspec.Meta(ge=1)]
    arch: Arch
    outcome: Outcome
    reason: NonEmpty | None = None
    log_url: HttpUrl | None = None
    artefacts: list[Artefact] = msgspec.field(default_factory=list)
    duration_s: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    channel: Name = "volatile"
    #: The build environment it ran in (sha256 digest); ``None``: the builder host.
    environment: Sha256 | None = None
    usage: Usage | None = None


class UsageV3(Usage, frozen=True):
    """What a build consumed (``build-done`` v3): version 2's, and the disk it took."""

    #: The build tree's peak size: sources, work, install tree, build dependencies.
    disk_bytes: Size = 0


class BuildDoneV3(BuildDone, frozen=True):
    """A build finished, whatever its outcome (version 3: its usage says the disk it took).

    A version 2 report with one more field, so whoever reads version 2 (``isinstance``
    :class:`BuildDone`) reads this one too; ``build-accepted`` v1 carries the version 2 form
    (:func:`build_done_v2`)."""

    usage: UsageV3 | None = None


def build_done_v2(done: BuildDone) -> BuildDone:
    """``done`` as version 2: without what later versions added (the disk a build took)."""
    if type(done) is BuildDone:
        return done
    usage = None if done.usage is None else Usage(
        cpu_s=done.usage.cpu_s, max_rss_kb=done.usage.max_rss_kb,
        output_bytes=done.usage.output_bytes, log_bytes=done.usage.log_bytes)
    fields = {f: getattr(done, f) for f in BuildDone.__struct_fields__ if f != "usage"}
    return BuildDone(**fields, usage=usage)


class BuildAdmitted(_Payload, frozen=True):
    """Summit admits a builder's claim: the task is still wanted, at this attempt, from this
    builder. Only now does the build start."""

    task_id: TaskId
    attempt: Attempt
    builder: BuilderName
    arch: Arch


class BuildAccepted(_Payload, frozen=True):
    """Summit accepts a successful build for publication: it is the open task for its source
    and release, and its packages are ones that source owns. Vessel publishes nothing else."""

    task_id: TaskId
    attempt: Attempt
    #: The package names the build's source owns: vessel refuses any other.
    packages: list[Name]
    build: BuildDone


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
    """Summit tells the builder it assigned a task to: stop it, or do not start it."""

    task_id: TaskId
    builder: BuilderName
    arch: Arch
    #: The attempt to stop; ``None`` stops whichever attempt the builder has.
    attempt: Attempt | None = None
    reason: NonEmpty = "cancelled by an operator"


class BuilderState(StrEnum):
    ONLINE = "online"
    #: Finishing what it runs, taking nothing new.
    DRAINING = "draining"
    OFFLINE = "offline"


class TaskAttempt(_Payload, frozen=True):
    task_id: TaskId
    attempt: Attempt


class BuilderSeen(_Payload, frozen=True):
    """A builder is alive, with this capacity and these tasks (sent at start, on every change
    and every ``interval_s`` seconds; ``offline`` when it stops)."""

    builder: BuilderName
    arch: Arch
    state: BuilderState
    #: Changes each time the builder process starts: a new boot has lost what the last ran.
    boot: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    slots: Annotated[int, msgspec.Meta(ge=0, le=1024)]
    interval_s: Positive
    running: list[TaskAttempt] = msgspec.field(default_factory=list)
    claimed: list[TaskAttempt] = msgspec.field(default_factory=list)
    features: list[Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]] = \
        msgspec.field(default_factory=list)
    memory_mb: Size | None = None
    disk_mb: Size | None = None
    artefacts_url: HttpUrl | None = None
    #: Build environments it holds unpacked (sha256 digests).
    environments: list[Sha256] = msgspec.field(default_factory=list)


Payload = (
    CommitSeen | TaskReady | BuildStarted | BuildAdmitted | BuildDone | BuildDoneV3
    | BuildAccepted
    | PackagePublished | PublishFailed | TaskCancelled | BuilderSeen
)
