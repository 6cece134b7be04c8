"""Benchmark: plan the corpus mass rebuild (every release raised by one).

Builds a scratch git repository with the corpus as one commit and a second commit bumping
every release, then times what ``cairn plan REPO --from HEAD~1`` does in-process: reading
both trees from git, and planning. Target: under 2 s. Last line of stdout is JSON.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from daemon.summit.gitrepo import Mirror
from daemon.summit.plancli import published_from
from daemon.summit.planning.planner import Planner
from daemon.summit.planning.states import RepoRef, TaskState

ENV = {"GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.org",
       "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@example.org", "HOME": "/tmp"}
RELEASE = re.compile(r"^(release\s*:\s*)(\d+)", re.MULTILINE)


def make_repo(corpus: Path, where: Path) -> Path:
    repo = where / "recipes"
    shutil.copytree(corpus, repo)
    for path in repo.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=repo, env=ENV, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("commit", "-qm", "corpus")
    for stone in repo.rglob("stone.yaml"):
        text = stone.read_text()
        stone.write_text(RELEASE.sub(lambda m: f"{m.group(1)}{int(m.group(2)) + 1}", text, 1))
    git("commit", "-qam", "bump")
    return repo


def plan_once(repo: Path) -> dict[str, float | int]:
    t0, c0 = time.perf_counter(), time.process_time()
    mirror = Mirror.local(repo)
    old, new = mirror.resolve("HEAD~1"), mirror.resolve("HEAD")
    published = published_from(mirror.read_tree(old, "x86_64"))
    tree = mirror.read_tree(new, "x86_64")
    t1 = time.perf_counter()
    planner = Planner(RepoRef(name="bench", url=str(repo)), published)
    decision = planner.plan_tree(tree)
    waves = planner.waves()
    t2, c2 = time.perf_counter(), time.process_time()
    blocked_hard = sum(1 for t in planner.open_tasks() if t.state is TaskState.BLOCKED
                       and any(r.kind != "dependency" for r in t.blocked_by))
    return {"read_s": t1 - t0, "plan_s": t2 - t1, "total_s": t2 - t0, "cpu_s": c2 - c0,
            "tasks": len(planner.open_tasks()), "ready": len(decision.ready),
            "waves": len(waves), "hard_blocked": blocked_hard}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", type=Path, required=True, help="serpent-recipes directory")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        repo = make_repo(args.corpus, Path(scratch))
        runs = [plan_once(repo) for _ in range(args.runs)]
    for run in runs:
        print(f"read {run['read_s']:.3f}s  plan {run['plan_s']:.3f}s  total {run['total_s']:.3f}s"
              f" (CPU {run['cpu_s']:.3f}s)"
              f"  tasks {run['tasks']} ready {run['ready']} waves {run['waves']}")
    result = {
        "benchmark": "plan_corpus",
        "recipes": runs[0]["tasks"],
        "ready": runs[0]["ready"],
        "waves": runs[0]["waves"],
        "hard_blocked": runs[0]["hard_blocked"],
        "total_s_median": round(statistics.median(r["total_s"] for r in runs), 4),
        "plan_s_median": round(statistics.median(r["plan_s"] for r in runs), 4),
        "read_s_median": round(statistics.median(r["read_s"] for r in runs), 4),
        # CPU seconds of the same: what a busy machine does not inflate.
        "cpu_s_median": round(statistics.median(r["cpu_s"] for r in runs), 4),
        "target_s": 2.0,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
