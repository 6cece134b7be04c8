"""Which limits a build runs under: summit's configuration, per repository and source.

Each ``[[summit.limits]]`` rule names the tasks it applies to (a repository, or any; a
shell-style pattern over source names) and some of a build's limits. A task's limits are
those of every rule that matches it, rules for every source (pattern ``*``: a repository's
defaults) first, then the others in the order configured: a limit a later rule sets
overrides an earlier one, a limit no rule sets is left to the builder's own configuration.
The result travels to the builder in ``task-ready``; the builder enforces it.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from events.payloads import BuildLimits, LogOverflow

_FIELDS = ("timeout_s", "silence_s", "log_bytes", "output_bytes")


@dataclass(frozen=True, slots=True)
class LimitRule:
    """Some limits for the tasks of matching sources; ``None``: not set by this rule."""

    pattern: str = "*"
    #: Only tasks of this repository; ``None``: any.
    repository: str | None = None
    timeout_s: float | None = None
    silence_s: float | None = None
    log_bytes: int | None = None
    log_overflow: LogOverflow | None = None
    output_bytes: int | None = None

    def matches(self, repository: str, source: str) -> bool:
        if self.repository is not None and repository != self.repository:
            return False
        return fnmatchcase(source, self.pattern)


@dataclass(frozen=True)
class LimitRules:
    """Every configured rule, in the order configured."""

    rules: tuple[LimitRule, ...] = ()

    def for_task(self, repository: str, source: str) -> BuildLimits | None:
        """The limits of a build of ``source`` from ``repository``; ``None``: no rule
        matches, every limit is the builder's own."""
        matching = [r for r in self.rules if r.matches(repository, source)]
        if not matching:
            return None
        matching.sort(key=lambda r: r.pattern != "*")  # stable: defaults first
        values: dict[str, object] = {}
        for rule in matching:
            for name in (*_FIELDS, "log_overflow"):
                value = getattr(rule, name)
                if value is not None:
                    values[name] = value
        return BuildLimits(**values)  # type: ignore[arg-type]


#: No rules: every build runs under its builder's own limits.
NO_LIMITS = LimitRules()
