"""Summarise a py-spy profile: where the CPU went, by function and by cairn module.

    py-spy record --format raw -r 20 -o /tmp/run.txt -- .venv/bin/python bench/mass_rebuild.py
    .venv/bin/python bench/profile_top.py /tmp/run.txt [--top 25]

py-spy's raw format is one collapsed stack per line (``frame;frame;... count``), each frame
``function (file:line)``. Printed: the functions with the most samples *on CPU at the top of
the stack* (self time), then, per ``daemon``/``events`` module, the samples in which it is on
the stack at all (inclusive time: what removing its work could save). Idle samples (the event
loop waiting in ``select``/``epoll``, threads parked) are counted apart.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]*)(?::\d+)?\)$")
#: Leaf frames that are a thread waiting, not working (py-spy cannot tell a blocking C call
#: that released the GIL from work): the event loop's poll, parked pool threads, aiosqlite's
#: worker waiting for its next query (core.py:59 is its queue's get()).
_IDLE = ("select (selectors.py", "_worker (concurrent/futures/thread.py", "wait (threading.py",
         "run_forever", "poll (selectors.py", "_run_once (asyncio/base_events.py",
         "_connection_worker_thread (aiosqlite/core.py:59)")
_PROJECT = re.compile(r"(?:^|/)((?:daemon|events|bench)/[\w/]+)\.py$")


_PROCESS = re.compile(r"^process \d+:\"?(?P<command>.*?)\"?$")
_SERVICE = re.compile(r"(?:-m daemon\.cli |cairn )(?P<service>\w+)|bench/(?P<bench>\w+)\.py")

Stack = tuple[str, list[str], int]


def read(path: Path) -> list[Stack]:
    """(process, frames, samples) per collapsed stack."""
    stacks = []
    for line in path.read_text().splitlines():
        frames, _, count = line.rpartition(" ")
        if frames and count.isdigit():
            # --subprocesses puts "process <pid>:<command>" first, once per generation (a
            # service started by the benchmark's farm is its grandchild): which process, not
            # a cost. A stack of process frames alone has no Python frame: idle.
            split = frames.split(";")
            name = ""
            while split and (process := _PROCESS.match(split[0])):
                name = _service(process.group("command"))
                split = split[1:]
            stacks.append((name, split, int(count)))
    return stacks


def _service(command: str) -> str:
    match = _SERVICE.search(command)
    if match is None:
        return command[:40]
    return match.group("service") or f"bench ({match.group('bench')}: builders)"


def summarise(stacks: list[Stack], top: int) -> str:
    total = sum(c for _p, _s, c in stacks)
    own: Counter[str] = Counter()
    modules: Counter[str] = Counter()
    processes: Counter[str] = Counter()
    idle = 0
    for process, frames, count in stacks:
        leaf = frames[-1] if frames else ""
        if not frames or any(mark in leaf for mark in _IDLE):
            idle += count
            continue
        own[leaf] += count
        processes[process] += count
        seen = set()
        for frame in frames:
            match = _FRAME.match(frame)
            project = _PROJECT.search(match.group("file")) if match else None
            if project and project.group(1) not in seen:
                seen.add(project.group(1))
                modules[project.group(1)] += count
    busy = total - idle
    lines = [f"{total} samples, {busy} on CPU ({idle} idle)", ""]
    if len(processes) > 1:
        lines += ["by process:"]
        lines += [f"  {n * 100 / max(busy, 1):5.1f}%  {p}" for p, n in processes.most_common()]
        lines += [""]
    lines += ["self time:"]
    lines += [f"  {n * 100 / max(busy, 1):5.1f}%  {f}" for f, n in own.most_common(top)]
    lines += ["", "inclusive, by cairn module:"]
    lines += [f"  {n * 100 / max(busy, 1):5.1f}%  {m}" for m, n in modules.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path, help="py-spy record --format raw output")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    print(summarise(read(args.profile), args.top))


if __name__ == "__main__":
    main()
