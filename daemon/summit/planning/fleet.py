"""The builders summit knows: their capacity, and whether they are still there.

Builders say so themselves (``builder-seen``: at start, on every change, and every
``interval_s`` seconds). A builder not heard from for :data:`GRACE` intervals is lost, and
so is what it held: summit gives those tasks to another attempt. A builder that comes back
with a new ``boot`` lost what its previous process was building.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum

from events.payloads import BuilderSeen, BuilderState

#: Missed heartbeats after which a builder is lost.
GRACE = 3.0


class BuilderStatus(StrEnum):
    ONLINE = "online"
    DRAINING = "draining"
    OFFLINE = "offline"
    #: Not heard from for longer than its grace period.
    LOST = "lost"


@dataclass(frozen=True, slots=True)
class Builder:
    """One builder as summit last heard of it."""

    name: str
    arch: str
    status: BuilderStatus
    boot: str
    slots: int
    interval_s: float
    #: When (epoch seconds) it was last heard from.
    seen: float
    features: frozenset[str] = frozenset()
    memory_mb: int | None = None
    disk_mb: int | None = None
    running: frozenset[tuple[int, int]] = frozenset()
    claimed: frozenset[tuple[int, int]] = frozenset()
    artefacts_url: str | None = None
    environments: frozenset[str] = frozenset()
    #: Heard from since summit started (one remembered from before is not given work until
    #: it reports again: it may be gone).
    heard: bool = True

    @property
    def takes_work(self) -> bool:
        return self.status is BuilderStatus.ONLINE and self.slots > 0 and self.heard

    @property
    def present(self) -> bool:
        return self.status in (BuilderStatus.ONLINE, BuilderStatus.DRAINING)

    def holds(self, task_id: int, attempt: int) -> bool:
        """Whether its last report says it runs or claims this attempt."""
        return (task_id, attempt) in self.running or (task_id, attempt) in self.claimed

    def overdue(self, now: float) -> bool:
        return self.present and now - self.seen > GRACE * self.interval_s


def builder_of(report: BuilderSeen, now: float) -> Builder:
    status = {BuilderState.ONLINE: BuilderStatus.ONLINE,
              BuilderState.DRAINING: BuilderStatus.DRAINING,
              BuilderState.OFFLINE: BuilderStatus.OFFLINE}[report.state]
    return Builder(
        name=report.builder, arch=report.arch, status=status, boot=report.boot,
        slots=report.slots, interval_s=report.interval_s, seen=now,
        features=frozenset(report.features), memory_mb=report.memory_mb,
        disk_mb=report.disk_mb,
        running=frozenset((t.task_id, t.attempt) for t in report.running),
        claimed=frozenset((t.task_id, t.attempt) for t in report.claimed),
        artefacts_url=report.artefacts_url, environments=frozenset(report.environments))


@dataclass(frozen=True, slots=True)
class Seen:
    """What one report changed: the builder now, and whether its process restarted (its
    previous process's builds are gone) or it went away."""

    builder: Builder
    rebooted: bool
    gone: bool


@dataclass
class Fleet:
    builders: dict[str, Builder] = field(default_factory=dict)

    def seen(self, report: BuilderSeen, now: float) -> Seen:
        before = self.builders.get(report.builder)
        now_builder = builder_of(report, now)
        self.builders[report.builder] = now_builder
        rebooted = before is not None and before.boot != report.boot
        return Seen(now_builder, rebooted, not now_builder.present)

    def restore(self, builder: Builder, now: float) -> None:
        """A builder remembered from before summit restarted: it gets a fresh grace period,
        since summit could not hear from it while it was down."""
        self.builders[builder.name] = replace(builder, seen=now, heard=False) \
            if builder.present else replace(builder, heard=False)

    def expire(self, now: float) -> list[Builder]:
        """Mark lost every builder not heard from for its grace period; returns them."""
        lost = [b for b in self.builders.values() if b.overdue(now)]
        for builder in lost:
            self.builders[builder.name] = replace(builder, status=BuilderStatus.LOST)
        return lost

    def hold(self, now: float) -> None:
        """Summit itself could not hear anyone (its bus was down): restart every present
        builder's grace period instead of declaring them all lost."""
        for name, builder in self.builders.items():
            if builder.present:
                self.builders[name] = replace(builder, seen=now)

    def get(self, name: str) -> Builder | None:
        return self.builders.get(name)
