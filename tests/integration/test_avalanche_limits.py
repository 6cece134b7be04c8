"""A build's limits, enforced by the builder on real sandboxed processes: silence, the log
cap (fail or cut and go on), the output cap; and what every build consumed (its usage)."""

from __future__ import annotations

from pathlib import Path

import msgspec

from daemon.avalanche.artefacts import ArtefactStore
from daemon.avalanche.build import run_build
from events.payloads import BuildLimits, LogOverflow, Outcome, TaskReady, UsageV3
from tests.integration.test_avalanche_outcomes import _recipe
from tests.unit.avalanche.support import config, task_for


def _limited(task: TaskReady, **limits: object) -> TaskReady:
    return msgspec.structs.replace(task, limits=BuildLimits(**limits))  # type: ignore[arg-type]


def test_a_build_silent_past_its_silence_limit_ends_silent(tmp_path: Path) -> None:
    marker = tmp_path / "survivor"
    build = f"echo talking\n(sleep 4; touch {marker}) &\nsleep 60"
    repo, commit = _recipe(tmp_path, "mute", build)
    task = _limited(task_for(repo, commit, "mute"), silence_s=1.0)
    result = run_build(task, config(tmp_path / "b", kill_grace_s=0.5))
    assert result.outcome is Outcome.SILENT, result.reason
    assert result.reason is not None and "step build" in result.reason
    assert "printed nothing for 1 s" in result.reason
    assert not marker.exists()


def test_output_keeps_a_build_under_its_silence_limit_alive(tmp_path: Path) -> None:
    repo, commit = _recipe(tmp_path, "talker", "for i in 1 2 3 4 5 6; do echo $i; sleep 0.4; done")
    task = _limited(task_for(repo, commit, "talker"), silence_s=1.5)
    result = run_build(task, config(tmp_path / "b"))
    assert result.outcome is Outcome.SUCCESS, result.reason


def test_the_builders_own_silence_limit_applies_when_the_task_sets_none(tmp_path: Path) -> None:
    repo, commit = _recipe(tmp_path, "mute2", "sleep 60")
    result = run_build(task_for(repo, commit, "mute2"),
                       config(tmp_path / "b", silence_s=1.0, kill_grace_s=0.5))
    assert result.outcome is Outcome.SILENT, result.reason


CHATTY = "for i in $(seq 1 2000); do echo \"line $i of a chatty build\"; done\necho finished"


def test_a_log_over_its_cap_fails_the_build_when_so_configured(tmp_path: Path) -> None:
    repo, commit = _recipe(tmp_path, "chatty", CHATTY + "\nsleep 60")
    lines: list[str] = []
    task = _limited(task_for(repo, commit, "chatty"), log_bytes=4096,
                    log_overflow=LogOverflow.FAIL)
    result = run_build(task, config(tmp_path / "b", kill_grace_s=0.5), lines.append)
    assert result.outcome is Outcome.LOG_LIMIT, result.reason
    assert result.reason is not None and "size cap" in result.reason
    kept = result.log_path.read_text()
    assert "[... log cut: the log reached its cap of 4096 bytes" in kept
    assert "line 1 of a chatty build" in kept and "line 2000 of" not in kept
    assert "finished" not in kept
    assert any("log cut" in line for line in lines)  # the live stream says so too
    assert result.artefacts == ()


def test_a_log_over_its_cap_is_cut_and_the_build_goes_on_when_so_configured(
        tmp_path: Path) -> None:
    repo, commit = _recipe(tmp_path, "chatty", CHATTY)
    task = _limited(task_for(repo, commit, "chatty"), log_bytes=4096,
                    log_overflow=LogOverflow.TRUNCATE)
    result = run_build(task, config(tmp_path / "b"))
    assert result.outcome is Outcome.SUCCESS, result.reason
    kept = result.log_path.read_text()
    assert "[... log cut: the log reached its cap of 4096 bytes" in kept
    assert "line 2000 of" not in kept and "\nfinished\n" not in kept
    assert "bytes of output past the cap of 4096 bytes were not kept" in kept
    assert result.log_path.stat().st_size < 4096 + 2048
    assert result.artefacts


BIG = "head -c 3000000 /dev/urandom > big.bin"
BIG_INSTALL = "\n    install -D -m 0644 big.bin %(installroot)%(datadir)/hoard/big.bin"


def test_a_build_over_its_output_cap_ends_output_limit(tmp_path: Path) -> None:
    repo, commit = _recipe(tmp_path, "hoard", BIG, install_extra=BIG_INSTALL)
    task = _limited(task_for(repo, commit, "hoard"), output_bytes=1_000_000)
    result = run_build(task, config(tmp_path / "b"))
    assert result.outcome is Outcome.OUTPUT_LIMIT, result.reason
    assert result.reason is not None and "over the output cap of 1000000 bytes" in result.reason
    assert result.artefacts == ()
    assert result.usage.output_bytes >= 3_000_000


def test_every_build_reports_its_cpu_time_peak_memory_and_sizes(tmp_path: Path) -> None:
    build = ("python3 -c \"import time; b = b'x' * (200 * 1024 * 1024); "
             "end = time.process_time() + 1.5\nwhile time.process_time() < end: pass\"")
    repo, commit = _recipe(tmp_path, "hungry", build)
    cfg = config(tmp_path / "b")
    task = task_for(repo, commit, "hungry")
    result = run_build(task, cfg)
    assert result.outcome is Outcome.SUCCESS, result.reason
    usage = ArtefactStore(cfg.artefacts_dir, "http://b:1").build_done(task, result, "b").usage
    assert usage is not None
    assert usage.max_rss_kb >= 200 * 1024
    # Sampled in the sandbox (daemon.avalanche.usage): within a sampling interval.
    assert 1.0 <= usage.cpu_s < 10
    assert usage.output_bytes == sum(a.size for a in result.artefacts) > 0
    assert usage.log_bytes == result.log_path.stat().st_size > 0
    assert isinstance(usage, UsageV3) and usage.disk_bytes > 0  # its tree's peak


def test_a_build_writing_past_its_output_cap_is_stopped_while_it_writes(
        tmp_path: Path) -> None:
    # Writes 1 MB into the install tree every 0.2 s and never ends by itself: only a cap
    # watched during the build stops it (a check after the build would wait for its
    # timeout, with the disk filling meanwhile).
    flood = ("mkdir -p %(installroot)/usr/share/flood\n"
             "while true; do head -c 1000000 /dev/zero >> %(installroot)/usr/share/flood/f; "
             "sleep 0.2; done")
    repo, commit = _recipe(tmp_path, "flood", flood)
    task = _limited(task_for(repo, commit, "flood"), output_bytes=4_000_000, timeout_s=30)
    result = run_build(task, config(tmp_path / "b", kill_grace_s=0.5))
    assert result.outcome is Outcome.OUTPUT_LIMIT, result.reason
    assert result.reason is not None and "over the output cap of 4000000 bytes" in result.reason
    assert "step build" in result.reason  # stopped while it ran, not after
    # What it had written when it was stopped (measured once more before the tree went):
    # within a few measurements of the cap, nowhere near filling the disk.
    assert 4_000_000 < result.usage.output_bytes < 40_000_000
    # The disk the build took: its whole tree, the install tree included.
    assert result.usage.disk_bytes >= result.usage.output_bytes
    assert result.artefacts == ()
