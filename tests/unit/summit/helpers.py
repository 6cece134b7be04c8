"""Small recipe trees for planner tests, built through the real parsers."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from daemon.summit.planning.planner import Decision, Planner
from daemon.summit.planning.states import Task
from daemon.summit.planning.tree import RecipeEntry, RecipeTree, load_entry
from events.payloads import Artefact, BuildDone, BuildStarted, Outcome

ARCH = "x86_64"


def stone(name: str, release: int, deps: Sequence[str] = (), version: str = "1.0") -> bytes:
    lines = [f"name: {name}", f"version: '{version}'", f"release: {release}",
             "summary: test", "license: [MIT]"]
    if deps:
        lines.append("builddeps:")
        lines += [f"    - {d}" for d in deps]
    lines.append("build: |\n    make")
    return ("\n".join(lines) + "\n").encode()


def manifest(name: str, provides: Iterable[str] = ()) -> bytes:
    doc = {"manifest-version": "0.2",
           "packages": {name: {"name": name, "provides": list(provides), "depends": [],
                               "build-depends": [], "files": []}}}
    return b"/* report */\n" + json.dumps(doc).encode()


def entry(name: str, release: int, deps: Sequence[str] = (), provides: Iterable[str] = (),
          with_manifest: bool = True) -> RecipeEntry:
    data = manifest(name, provides) if with_manifest else None
    return load_entry(f"r/{name}", stone(name, release, deps), data, ARCH)


def tree(commit: str, *entries: RecipeEntry) -> RecipeTree:
    return RecipeTree(commit=commit, entries={e.path: e for e in entries})


def commit_id(n: int) -> str:
    return f"{n:040x}"


def build(p: Planner, task: Task, outcome: Outcome = Outcome.SUCCESS, builder: str = "b",
          reason: str | None = None, names: Sequence[str] | None = None) -> Decision:
    """Take a ready task through assignment, claim and admission to its build report (the
    artefacts are the source's own package unless ``names`` says otherwise)."""
    p.assign(task.task_id, builder, 0.0)
    attempt = p.tasks[task.task_id].attempt
    p.on_build_started(BuildStarted(task_id=task.task_id, builder=builder, arch=ARCH,
                                    attempt=attempt))
    artefacts = [Artefact(name=n, filename=f"{n}.tar.zst", url="http://b/a", sha256="0" * 64,
                          size=1) for n in (names if names is not None else [task.source])]
    return p.on_build_done(BuildDone(
        task_id=task.task_id, attempt=attempt, builder=builder, source=task.source,
        version="1", release=task.release, build_release=1, arch=ARCH, outcome=outcome,
        reason=reason, artefacts=artefacts if outcome is Outcome.SUCCESS else []))
