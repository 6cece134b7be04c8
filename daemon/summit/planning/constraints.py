"""What a task needs of a builder, and whether a builder has it.

A source's needs come from summit's configuration: rules per repository and per source
pattern (shell-style, ``llvm*``), each naming features (``big``, ``kvm``) and the memory and
disk a build of it takes; every rule that matches a task adds to its needs (features are
united, sizes take the largest). Needs learned from a source's build history (the peak
memory and the disk its latest build took) are added as *measured* sizes: they only exclude
builders that declare less, since a builder that declares nothing cannot be compared.

A builder can take a task when it has every feature and declares at least the configured
memory and disk (a builder that declares no memory cannot promise a configured amount).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from daemon.summit.planning.fleet import Builder
from daemon.summit.planning.states import Task


@dataclass(frozen=True, slots=True)
class Needs:
    """What one build needs; all empty: any builder of its arch."""

    features: frozenset[str] = frozenset()
    memory_mb: int = 0
    disk_mb: int = 0
    #: Learned from history: only a builder declaring less is excluded.
    measured_memory_mb: int = 0
    measured_disk_mb: int = 0

    def merge(self, other: Needs) -> Needs:
        return Needs(self.features | other.features, max(self.memory_mb, other.memory_mb),
                     max(self.disk_mb, other.disk_mb),
                     max(self.measured_memory_mb, other.measured_memory_mb),
                     max(self.measured_disk_mb, other.measured_disk_mb))

    @property
    def constraint_class(self) -> str:
        """A short label grouping tasks by what they need (a metric label): ``any``, or the
        features and ``memory``/``disk`` when configured, joined by ``+``."""
        parts = sorted(self.features)
        parts += [n for n, v in (("memory", self.memory_mb), ("disk", self.disk_mb)) if v]
        return "+".join(parts) or "any"

    def describe(self) -> str:
        """The needs in words: ``feature big, 8192 MB memory``."""
        parts = [f"feature {f}" for f in sorted(self.features)]
        memory = max(self.memory_mb, self.measured_memory_mb)
        disk = max(self.disk_mb, self.measured_disk_mb)
        if memory:
            parts.append(f"{memory} MB memory")
        if disk:
            parts.append(f"{disk} MB disk")
        return ", ".join(parts) or "nothing in particular"


@dataclass(frozen=True, slots=True)
class Rule:
    """One ``[[summit.constraints]]`` entry: tasks it applies to, and what they need."""

    needs: Needs
    #: Shell-style pattern over source names.
    pattern: str = "*"
    #: Only tasks of this repository; ``None``: any.
    repository: str | None = None

    def matches(self, task: Task) -> bool:
        if self.repository is not None and task.repository != self.repository:
            return False
        return fnmatchcase(task.source, self.pattern)


@dataclass(frozen=True)
class Constraints:
    """Every configured rule, and the needs learned per source (peak memory, disk)."""

    rules: tuple[Rule, ...] = ()
    learned: Mapping[str, Needs] = field(default_factory=dict)

    def needs(self, task: Task) -> Needs:
        out = self.learned.get(task.source, Needs())
        for rule in self.rules:
            if rule.matches(task):
                out = out.merge(rule.needs)
        return out


def lacks(builder: Builder, needs: Needs) -> list[str]:
    """What ``builder`` lacks of ``needs``, in words; empty when it can take the task."""
    out = [f"feature {f}" for f in sorted(needs.features - builder.features)]
    if needs.memory_mb and (builder.memory_mb or 0) < needs.memory_mb:
        out.append(f"{needs.memory_mb} MB memory")
    elif builder.memory_mb is not None and builder.memory_mb < needs.measured_memory_mb:
        out.append(f"{needs.measured_memory_mb} MB memory (measured)")
    if needs.disk_mb and (builder.disk_mb or 0) < needs.disk_mb:
        out.append(f"{needs.disk_mb} MB disk")
    elif builder.disk_mb is not None and builder.disk_mb < needs.measured_disk_mb:
        out.append(f"{needs.measured_disk_mb} MB disk (measured)")
    return out


def fits(builder: Builder, needs: Needs) -> bool:
    return not lacks(builder, needs)


def any_fits(builders: Iterable[Builder], needs: Needs) -> bool:
    return any(fits(b, needs) for b in builders)


#: No rules, nothing learned: every task may go to any builder of its arch.
NO_CONSTRAINTS = Constraints()
