"""What a build's processes consume: CPU time and peak memory, read from ``/proc``.

The builder reaps each command itself (``wait4``), which counts the command and every
descendant it waited for. A sandboxed command does not pass that on: bubblewrap's outer
process learns its child's end through a pipe and exits without reaping the PID
namespace's init, so the usage of everything inside is lost to ``wait4``. The builder
therefore also samples the command's process tree in ``/proc`` while it runs: the CPU time
of every live process plus what each has reaped of its own descendants (``cutime``,
``cstime``) never counts a process twice, grows as the build works and is read until just
before the end; the peak is the largest high-water mark (``VmHWM``) of any one process. A
command's usage is the larger of the two readings: exact where ``wait4`` sees everything,
within one sampling interval of the truth where it does not.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PROC = "/proc"


@dataclass
class Meter:
    """What the build's commands consumed so far: CPU seconds (user + system) summed over
    commands, and the largest resident set any of their processes reached (KiB)."""

    cpu_s: float = 0.0
    max_rss_kb: int = 0

    def add(self, cpu_s: float, max_rss_kb: int) -> None:
        self.cpu_s += cpu_s
        self.max_rss_kb = max(self.max_rss_kb, max_rss_kb)


@dataclass
class CommandUsage:
    """One command's usage as read so far, from ``wait4`` and from samples of its tree."""

    waited_cpu_s: float = 0.0
    waited_rss_kb: int = 0
    sampled_cpu_s: float = 0.0
    sampled_rss_kb: int = 0

    def waited(self, usage: resource.struct_rusage) -> None:
        self.waited_cpu_s = usage.ru_utime + usage.ru_stime
        self.waited_rss_kb = int(usage.ru_maxrss)

    def sample(self, root: int) -> None:
        cpu, rss = sample_tree(root)
        self.sampled_cpu_s = max(self.sampled_cpu_s, cpu)
        self.sampled_rss_kb = max(self.sampled_rss_kb, rss)

    def into(self, meter: Meter) -> None:
        meter.add(max(self.waited_cpu_s, self.sampled_cpu_s),
                  max(self.waited_rss_kb, self.sampled_rss_kb))


def _stat(pid: str) -> tuple[int, float] | None:
    """(parent pid, CPU seconds of the process and its reaped descendants)."""
    try:
        with open(f"{_PROC}/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    fields = raw[raw.rfind(b")") + 2:].split()
    # After the command name: state ppid ... utime(14) stime cutime cstime (1-based, man 5 proc)
    ticks = sum(int(x) for x in fields[11:15])
    return int(fields[1]), ticks / _TICK


def _hwm_kb(pid: str) -> int:
    try:
        with open(f"{_PROC}/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def sample_tree(root: int) -> tuple[float, int]:
    """CPU seconds and the largest peak RSS (KiB) of ``root`` and its live descendants."""
    parents: dict[int, list[str]] = {}
    cpu_of: dict[str, float] = {}
    try:
        pids = [name for name in os.listdir(_PROC) if name.isdigit()]
    except OSError:
        return 0.0, 0
    for pid in pids:
        stat = _stat(pid)
        if stat is not None:
            parents.setdefault(stat[0], []).append(pid)
            cpu_of[pid] = stat[1]
    cpu, rss = 0.0, 0
    todo = [str(root)]
    while todo:
        pid = todo.pop()
        if pid not in cpu_of:
            continue
        cpu += cpu_of[pid]
        rss = max(rss, _hwm_kb(pid))
        todo.extend(parents.get(int(pid), ()))
    return cpu, rss
