"""``cairn tasks ...`` and ``cairn recipes ...``: summit's JSON API from a terminal.

``cairn recipes`` is about the recipe repositories summit watches (git); the package
repository vessel publishes is checked with ``cairn channel verify``. ``cairn repos`` is the
old spelling, kept as an alias for one release.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import aiohttp

from daemon.paths import default_state_dir
from daemon.summit.planning.states import TaskState
from daemon.terminal import printable
from events.errors import CairnError

DEFAULT_URL = "http://127.0.0.1:8080"


def register(subparsers: Any) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--summit", default=None,
                        help=f"summit's URL (default $CAIRN_SUMMIT_URL or {DEFAULT_URL})")
    common.add_argument("--token", default=None,
                        help="admin token (default $CAIRN_ADMIN_TOKEN, or the one in the "
                             "state directory)")
    common.add_argument("--json", action="store_true", help="print the API's JSON")

    tasks = subparsers.add_parser("tasks", help="list, show, retry and cancel build tasks")
    sub = tasks.add_subparsers(dest="tasks_command", metavar="ACTION", required=True)
    ls = sub.add_parser("ls", parents=[common], help="list tasks")
    ls.add_argument("--state", choices=list(TaskState))
    ls.add_argument("--source")
    ls.add_argument("--limit", type=int, default=100)
    ls.set_defaults(func=_tasks_ls)
    for name, helptext in (("show", "one task, its blockers and timeline"),
                           ("retry", "build a failed task again"),
                           ("cancel", "cancel a task (stops its build)")):
        action = sub.add_parser(name, parents=[common], help=helptext)
        action.add_argument("id", type=int)
        action.set_defaults(func=_task_action, action=name)
    history = sub.add_parser("history", parents=[common],
                             help="a source's builds: outcome, duration, CPU, peak memory, disk")
    history.add_argument("source")
    history.add_argument("--limit", type=int, default=20)
    history.set_defaults(func=_history)
    priority = sub.add_parser("priority", parents=[common],
                              help="set a task's priority (higher goes first) until it builds")
    priority.add_argument("id", type=int)
    priority.add_argument("priority", type=int)
    priority.set_defaults(func=_task_priority)
    _register_bulk(sub, common)
    _register_levers(subparsers, common)

    repos = subparsers.add_parser("recipes", aliases=["repos"],
                                  help="the recipe repositories summit watches (git)")
    rsub = repos.add_subparsers(dest="repos_command", metavar="ACTION", required=True)
    rls = rsub.add_parser("ls", parents=[common],
                          help="list the recipe repositories and their recipe errors")
    rls.set_defaults(func=_repos_ls)
    refresh = rsub.add_parser("refresh", parents=[common],
                              help="fetch a recipe repository now")
    refresh.add_argument("name")
    refresh.set_defaults(func=_repos_refresh)
    env = rsub.add_parser("environment", parents=[common],
                          help="point a recipe repository at another build environment; "
                               "what it built is built again in it")
    env.add_argument("name")
    env.add_argument("digest", metavar="DIGEST|none",
                     help="the environment's sha256 (cairn buildenv ls), or none")
    env.set_defaults(func=_repos_environment)


def _token(args: argparse.Namespace) -> str:
    if args.token:
        return str(args.token)
    if os.environ.get("CAIRN_ADMIN_TOKEN"):
        return os.environ["CAIRN_ADMIN_TOKEN"]
    path = default_state_dir() / "summit" / "admin.token"
    return path.read_text().strip() if path.exists() else ""


async def _call(args: argparse.Namespace, method: str, path: str,
                body: dict[str, Any] | None = None) -> Any:
    base = (args.summit or os.environ.get("CAIRN_SUMMIT_URL") or DEFAULT_URL).rstrip("/")
    headers = {"Authorization": f"Bearer {_token(args)}"} if method != "GET" else {}
    try:
        async with aiohttp.ClientSession() as session, session.request(
                method, base + path, headers=headers, json=body,
                timeout=aiohttp.ClientTimeout(total=30)) as response:
            text = await response.text()
            if response.status >= 400:
                try:
                    message = json.loads(text).get("error", text)
                except ValueError:
                    message = text
                raise CairnError(f"summit answered {response.status}: {message.strip()}")
            return json.loads(text)
    except aiohttp.ClientError as exc:
        raise CairnError(f"cannot reach summit at {base}: {exc}") from None


def _blockers(task: dict[str, Any]) -> str:
    parts = []
    for b in task["blocked_by"]:
        detail = b.get("source") or b.get("name") or ",".join(b.get("members", []))
        parts.append(f"{b['kind']}:{detail}")
    return " ".join(parts)


async def _tasks_ls(args: argparse.Namespace) -> int:
    query = f"?limit={args.limit}"
    query += f"&state={args.state}" if args.state else ""
    query += f"&source={args.source}" if args.source else ""
    data = await _call(args, "GET", "/api/v1/tasks" + query)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print("  ".join(f"{k}={v}" for k, v in sorted(data["counts"].items()) if v))
    for t in data["tasks"]:
        extra = _blockers(t) or (t["failure"] or "") or (t["builder"] or "")
        # Failure reasons quote build output: a recipe's escape sequences stay visible text.
        print(printable(f"{t['id']:>6}  {t['state']:<11} {t['source']:<28} "
                        f"{t['version']}-{t['release']}  {extra}"))
    return 0


async def _task_action(args: argparse.Namespace) -> int:
    method, path = ("GET", f"/api/v1/tasks/{args.id}") if args.action == "show" else \
        ("POST", f"/api/v1/tasks/{args.id}/{args.action}")
    data = await _call(args, method, path)
    if args.json or args.action != "show":
        print(json.dumps(data, indent=2))
        return 0
    lines = [f"task {data['id']}: {data['source']} {data['version']}-{data['release']} "
             f"({data['arch']}) {data['state']}, reason: {data['reason']}"]
    if data["blocked_by"]:
        lines.append(f"  blocked by: {_blockers(data)}")
    if data["failure"]:
        lines.append(f"  failure: {data['failure']}")
    if data.get("retry_at") and data["state"] == "ready" and not data["builder"]:
        when = time.strftime("%H:%M:%S", time.localtime(data["retry_at"]))
        lines.append(f"  attempt {data['attempt']} not before {when} (back-off)")
    lines.append(f"  depends on: {', '.join(data.get('depends_on', [])) or '-'}")
    lines += [f"  - {entry['type']}: {entry['summary']}" for entry in data.get("timeline", [])]
    lines += [f"  build (attempt {build['attempt']}): {_build_line(build)}"
              for build in data.get("builds", [])]
    for line in lines:
        print(printable(line))
    return 0


def _build_line(build: dict[str, Any]) -> str:
    """One build as a line: outcome, builder, duration and what it consumed."""
    parts = [f"{build['outcome']:<14}", f"on {build['builder']}",
             f"{build['duration_s']:.1f} s"]
    if build.get("cpu_s") is not None:
        parts.append(f"CPU {build['cpu_s']:.1f} s")
    if build.get("max_rss_kb") is not None:
        parts.append(f"peak {build['max_rss_kb'] / 1024:.1f} MiB")
    if build.get("output_bytes") is not None:
        parts.append(f"output {build['output_bytes']} B")
    if build.get("disk_bytes") is not None:
        parts.append(f"disk {build['disk_bytes'] / 2**20:.1f} MiB")
    return "  ".join(parts)


async def _history(args: argparse.Namespace) -> int:
    data = await _call(args, "GET", f"/api/v1/sources/{args.source}/history?limit={args.limit}")
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    for build in data["builds"]:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(build["time"]))
        print(printable(f"{when}  task {build['task_id']:>6} attempt {build['attempt']}  "
                        f"{build['version']}-{build['release']}  {_build_line(build)}"))
    if not data["builds"]:
        print(f"no build of {args.source} has finished yet")
    return 0


def _old_spelling(args: argparse.Namespace) -> None:
    if args.command == "repos":
        print("cairn: note: 'cairn repos' is now 'cairn recipes' (the old name goes in the next "
              "release)", file=sys.stderr)


async def _repos_ls(args: argparse.Namespace) -> int:
    _old_spelling(args)
    data = await _call(args, "GET", "/api/v1/repositories")
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    for repo in data["repositories"]:
        head = (repo["head"] or "-")[:12]
        print(printable(f"{repo['name']}  {repo['url']}  {repo['branch']}@{head}"
                        + (f"  error: {repo['error']}" if repo["error"] else "")))
        for error in repo["recipe_errors"]:  # they quote the recipe's own text
            print(printable(f"    {error['file']}:{error['line']}: {error['message']}"))
    return 0


async def _repos_environment(args: argparse.Namespace) -> int:
    digest = None if args.digest == "none" else args.digest
    done = await _call(args, "POST", f"/api/v1/repositories/{args.name}/environment",
                       {"environment": digest})
    named = f"sha256:{done['environment']}" if done["environment"] else "no environment"
    print(f"{args.name} now builds in {named}; {len(done['tasks'])} task(s) changed "
          "(reason: build environment changed)")
    for task in done["tasks"]:
        print(f"  #{task['id']} {task['source']} {task['state']} ({task['reason']})")
    return 0


async def _repos_refresh(args: argparse.Namespace) -> int:
    _old_spelling(args)
    await _call(args, "POST", f"/api/v1/repositories/{args.name}/refresh")
    print(f"refreshing {args.name}")
    return 0




# -- levers: priority, bulk actions, pause/resume, drain/enable -------------------------------
def _register_bulk(sub: Any, common: argparse.ArgumentParser) -> None:
    for name, helptext in (("cancel-all", "cancel every task matching the filter"),
                           ("retry-all", "retry every failed task matching the filter"),
                           ("priority-all", "set the priority of every matching task not yet "
                                            "building")):
        bulk = sub.add_parser(name, parents=[common],
                              help=f"{helptext} (lists them; --yes to do it)")
        if name == "priority-all":
            bulk.add_argument("priority", type=int)
        bulk.add_argument("--repository")
        bulk.add_argument("--state", choices=list(TaskState))
        bulk.add_argument("--source", help="shell-style pattern over source names")
        bulk.add_argument("--yes", action="store_true",
                          help="do it (without: a dry run that lists the tasks)")
        bulk.set_defaults(func=_bulk, action=name.removesuffix("-all"))


def _register_levers(subparsers: Any, common: argparse.ArgumentParser) -> None:
    dispatch = subparsers.add_parser("dispatch", help="pause or resume summit's dispatch")
    dsub = dispatch.add_subparsers(dest="dispatch_command", metavar="ACTION", required=True)
    dsub.add_parser("show", parents=[common], help="what is paused and drained").set_defaults(
        func=_dispatch, action="show")
    for verb in ("pause", "resume"):
        lever = dsub.add_parser(verb, parents=[common],
                                help=f"{verb} dispatch (running builds go on)")
        lever.add_argument("--repository", help="only this repository's tasks")
        lever.set_defaults(func=_dispatch, action=verb)
    builders = subparsers.add_parser("builders", help="drain or enable a builder")
    bsub = builders.add_subparsers(dest="builders_command", metavar="ACTION", required=True)
    for verb, helptext in (("drain", "finish what it runs, take nothing new"),
                           ("enable", "take work again")):
        lever = bsub.add_parser(verb, parents=[common], help=helptext)
        lever.add_argument("name")
        lever.set_defaults(func=_builder_lever, action=verb)


def _line(t: dict[str, Any]) -> str:
    return (f"{t['id']:>6}  {t['state']:<11} {t['source']:<28} {t['version']}-{t['release']}"
            f"  priority {t['priority']}")


async def _task_priority(args: argparse.Namespace) -> int:
    data = await _call(args, "POST", f"/api/v1/tasks/{args.id}/priority",
                       {"priority": args.priority})
    print(json.dumps(data, indent=2) if args.json else _line(data))
    return 0


async def _bulk(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"repository": args.repository, "state": args.state,
                            "source": args.source, "dry_run": not args.yes}
    if args.action == "priority":
        body["priority"] = args.priority
    data = await _call(args, "POST", f"/api/v1/bulk/{args.action}", body)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    if data["dry_run"]:
        print(f"would {args.action} {len(data['matched'])} task(s) (--yes to do it):")
        for t in data["matched"]:
            print(_line(t))
        return 0
    print(f"{args.action}: {len(data['done'])} done, {len(data['skipped'])} skipped")
    for t in data["done"]:
        print(_line(t))
    for skipped in data["skipped"]:
        print(f"{skipped['task']['id']:>6}  skipped: {skipped['error']}")
    return 0


def _print_levers(data: dict[str, Any]) -> None:
    print(f"dispatch: {'paused' if data['paused'] else 'running'}")
    if data["paused_repositories"]:
        print(f"paused repositories: {', '.join(data['paused_repositories'])}")
    if data["drained"]:
        print(f"drained builders: {', '.join(data['drained'])}")


async def _dispatch(args: argparse.Namespace) -> int:
    if args.action == "show":
        data = await _call(args, "GET", "/api/v1/dispatch")
    else:
        data = await _call(args, "POST", f"/api/v1/dispatch/{args.action}",
                           {"repository": args.repository})
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        _print_levers(data)
    return 0


async def _builder_lever(args: argparse.Namespace) -> int:
    data = await _call(args, "POST", f"/api/v1/builders/{args.name}/{args.action}")
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        _print_levers(data)
    return 0
