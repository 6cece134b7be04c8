"""``cairn plan``: what would summit build if this merged?

Runs summit's planner, unchanged, on two commits of a recipe repository: recipes as they
are at ``--from`` count as published (nothing is, without ``--from``), and the tree at
``--to`` is planned against that and what ``--environment`` provides. Nothing is written
anywhere but a temporary clone when ``REPO`` is a URL.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import textwrap
from pathlib import Path
from typing import Any

from daemon.buildenv import archive
from daemon.buildenv.errors import BuildEnvError
from daemon.buildenv.manifest import decode_record
from daemon.summit.gitrepo import Mirror, RepoConfig
from daemon.summit.planning.graph import PublishedIndex
from daemon.summit.planning.planner import Planner
from daemon.summit.planning.states import BlockKind, BlockReason, RepoRef, Task, TaskState
from daemon.summit.planning.tree import RecipeTree


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "plan", help="show what summit would build between two commits of a recipe repository",
        description="Plan the builds of a recipe repository: recipes at --from count as "
                    "published (none without --from); the tree at --to is planned.",
    )
    parser.add_argument("repo", metavar="REPO", help="git repository path or URL")
    parser.add_argument("--from", dest="from_rev", default=None, metavar="REV",
                        help="revision whose recipes count as published (default: nothing)")
    parser.add_argument("--to", dest="to_rev", default="HEAD", metavar="REV",
                        help="revision to plan (default HEAD)")
    parser.add_argument("--arch", default="x86_64", help="architecture (default x86_64)")
    parser.add_argument("--environment", type=Path, default=None, metavar="FILE",
                        help="the repository's build environment (its .json record or "
                             ".tar.zst archive): what it provides resolves build dependencies "
                             "too, as in summit (default: none)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="cairn-plan-") as scratch:
        mirror = _open(args.repo, Path(scratch))
        to_commit = mirror.resolve(args.to_rev)
        published = PublishedIndex()
        if args.from_rev is not None:
            published = published_from(mirror.read_tree(mirror.resolve(args.from_rev), args.arch))
        tree = mirror.read_tree(to_commit, args.arch)
    planner = Planner(RepoRef(name="plan", url=args.repo, arch=args.arch), published,
                      environment_provides=environment_provides(args.environment))
    planner.plan_tree(tree)
    report = plan_report(planner)
    if args.json:
        print(json.dumps(report, indent=1, sort_keys=False))
    else:
        print(human_summary(report, args))
    return 0


def environment_provides(path: Path | None) -> frozenset[str]:
    """What the environment whose record or archive is at ``path`` provides."""
    if path is None:
        return frozenset()
    if path.name.endswith(".tar.zst"):
        return frozenset(archive.read_manifest(path).provides)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BuildEnvError(f"cannot read the environment record {path}: {exc}") from exc
    return frozenset(decode_record(raw, what=str(path)).manifest.provides)


def _open(repo: str, scratch: Path) -> Mirror:
    if Path(repo).exists():
        return Mirror.local(repo, RepoConfig(name="plan", url=repo))
    return Mirror.clone(repo, scratch / "repo.git", RepoConfig(name="plan", url=repo))


def published_from(tree: RecipeTree) -> PublishedIndex:
    """Every recipe of ``tree`` as if its release were published with its manifest."""
    index = PublishedIndex()
    for entry in tree.entries.values():
        if entry.recipe is not None:
            index.add(entry.recipe.name, entry.recipe.release, entry.providers)
    return index


def plan_report(planner: Planner) -> dict[str, Any]:
    """The JSON shape of ``cairn plan --json``."""
    tasks = sorted(planner.open_tasks(), key=lambda t: t.source)
    return {
        "tasks": [_task_json(planner, t) for t in tasks],
        "waves": planner.waves(),
        "errors": [p.to_json() for p in planner.problems],
    }


def _task_json(planner: Planner, task: Task) -> dict[str, Any]:
    schedule = planner.schedule
    waits = schedule.edges.get(task.source, frozenset()) - schedule.broken.get(task.source, set())
    return {
        "source": task.source,
        "version": task.version,
        "release": task.release,
        "state": "ready" if task.state is TaskState.READY else "blocked",
        "depends_on": sorted(waits - {task.source}),
        "blocked_by": [r.to_json() for r in task.blocked_by],
        "reason": str(task.reason),
        "critical_path": planner.critical_path(task.source),
        "recipe_path": task.recipe_path,
    }


def human_summary(report: dict[str, Any], args: argparse.Namespace) -> str:
    tasks: list[dict[str, Any]] = report["tasks"]
    waves: list[list[str]] = report["waves"]
    ready = sum(1 for t in tasks if t["state"] == "ready")
    span = f"{args.from_rev}..{args.to_rev}" if args.from_rev else f"nothing..{args.to_rev}"
    lines = [f"plan of {args.repo} ({args.arch}, {span}): {len(tasks)} builds, "
             f"{ready} ready, {len(tasks) - ready} blocked"]
    if report["errors"]:
        lines.append(f"\nrecipe errors ({len(report['errors'])}):")
        lines += [f"  {e['file']}:{e['line']}: {e['message']}" for e in report["errors"]]
    in_waves = {s for wave in waves for s in wave}
    stuck = [t for t in tasks if t["state"] == "blocked" and t["source"] not in in_waves]
    waiting = sum(1 for t in tasks if t["state"] == "blocked" and t["source"] in in_waves)
    if waiting:
        lines.append(f"\n{waiting} blocked only until earlier waves are published")
    if stuck:
        lines += _stuck_text(stuck)
    lines.append(f"\nbuild waves ({len(waves)}):")
    for k, wave in enumerate(waves, start=1):
        body = _wrap(wave, 4)
        lines.append(f"  wave {k} ({len(wave)}):\n{body}")
    return "\n".join(lines)


def _stuck_text(stuck: list[dict[str, Any]]) -> list[str]:
    """Cycles once each with their members, other hard blocks per task, then the rest."""
    lines = [f"\ncannot start ({len(stuck)}):"]
    cycles = sorted({tuple(r["members"]) for t in stuck for r in t["blocked_by"]
                     if r["kind"] == BlockKind.CYCLE}, key=lambda c: (-len(c), c))
    for members in cycles:
        text = _wrap(members, 6)
        lines.append(f"  cycle of {len(members)} with nothing published:\n{text}")
    downstream = []
    for task in stuck:
        hard = [r for r in task["blocked_by"]
                if r["kind"] in (BlockKind.UNRESOLVABLE, BlockKind.FAILED)]
        if hard:
            lines.append(f"  {task['source']}: {_reasons_text(hard)}")
        elif not any(r["kind"] == BlockKind.CYCLE for r in task["blocked_by"]):
            downstream.append(task["source"])
    if downstream:
        text = _wrap(downstream, 6)
        lines.append(f"  downstream of those ({len(downstream)}):\n{text}")
    return lines


def _wrap(words: list[str] | tuple[str, ...], indent: int) -> str:
    pad = " " * indent
    return textwrap.fill(" ".join(words), width=96, initial_indent=pad, subsequent_indent=pad,
                         break_on_hyphens=False, break_long_words=False)


def _reasons_text(reasons: list[dict[str, Any]]) -> str:
    parts = []
    for raw in reasons:
        kind = BlockKind(raw["kind"])
        reason = BlockReason(kind, source=raw.get("source"), members=tuple(raw.get("members", ())),
                             name=raw.get("name"))
        if kind is BlockKind.CYCLE:
            parts.append(f"cycle of {len(reason.members)} ({', '.join(reason.members)})")
        elif kind is BlockKind.UNRESOLVABLE:
            parts.append(f"nothing provides {reason.name}")
        elif kind is BlockKind.FAILED:
            parts.append(f"{reason.source} failed")
        else:
            parts.append(f"waits for {reason.source}")
    return "; ".join(parts)
