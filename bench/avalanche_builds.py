"""Benchmark avalanche's build core: noop builds (farm dry runs) and real script builds.

Builds the example recipes from a temporary git repository; prints per-backend figures and
ends with one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from daemon.avalanche.build import run_build
from events.payloads import Outcome
from tests.unit.avalanche.support import config, make_repo, task_for


def _time(repo: Path, commit: str, root: Path, name: str, backend: str, n: int) -> list[float]:
    cfg = config(root, backend=backend)
    times = []
    for _ in range(n):
        started = time.perf_counter()
        result = run_build(task_for(repo, commit, name), cfg)
        times.append(time.perf_counter() - started)
        if result.outcome is not Outcome.SUCCESS:
            raise SystemExit(f"{name} ({backend}) failed: {result.reason}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--noop", type=int, default=200, help="noop builds to run")
    parser.add_argument("--script", type=int, default=5, help="script builds of libgreet")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo, commit = make_repo(Path(tmp) / "recipes")
        noop = _time(repo, commit, Path(tmp) / "noop", "libgreet", "noop", args.noop)
        script = _time(repo, commit, Path(tmp) / "script", "libgreet", "script", args.script)
    figures = {
        "noop_builds": len(noop),
        "noop_builds_per_s": round(len(noop) / sum(noop), 1),
        "noop_median_ms": round(statistics.median(noop) * 1000, 2),
        "script_builds": len(script),
        "script_median_s": round(statistics.median(script), 3),
        "script_max_s": round(max(script), 3),
    }
    for key, value in figures.items():
        print(f"{key:>20}: {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
