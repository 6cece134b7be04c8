"""Which limits a task's build runs under: repository defaults, then per-source overrides."""

from __future__ import annotations

from daemon.summit.planning.limits import NO_LIMITS, LimitRule, LimitRules
from events.payloads import BuildLimits, LogOverflow

RULES = LimitRules((
    LimitRule(pattern="llvm*", silence_s=3600, output_bytes=10**10),
    LimitRule(repository="main", silence_s=600, log_bytes=10**6, timeout_s=7200),
    LimitRule(pattern="*", log_overflow=LogOverflow.TRUNCATE),
    LimitRule(repository="other", pattern="llvm*", silence_s=60),
))


def test_no_rule_leaves_every_limit_to_the_builder() -> None:
    assert NO_LIMITS.for_task("main", "zlib") is None
    assert LimitRules((LimitRule(pattern="gcc"),)).for_task("main", "zlib") is None


def test_repository_defaults_apply_to_every_source_of_it() -> None:
    assert RULES.for_task("main", "zlib") == BuildLimits(
        timeout_s=7200, silence_s=600, log_bytes=10**6, log_overflow=LogOverflow.TRUNCATE)
    assert RULES.for_task("third", "zlib") == BuildLimits(log_overflow=LogOverflow.TRUNCATE)


def test_a_source_pattern_overrides_the_defaults_whatever_the_order() -> None:
    # llvm* is configured before the repository's defaults, and still wins over them.
    assert RULES.for_task("main", "llvm-18") == BuildLimits(
        timeout_s=7200, silence_s=3600, log_bytes=10**6, log_overflow=LogOverflow.TRUNCATE,
        output_bytes=10**10)
    # Among overrides, the one configured later wins.
    assert RULES.for_task("other", "llvm-18") == BuildLimits(
        silence_s=60, log_overflow=LogOverflow.TRUNCATE, output_bytes=10**10)
