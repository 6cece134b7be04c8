"""``cairn up``: run the whole farm on this machine, with progress on the terminal."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from daemon.commands.upenv import Chosen, choose
from daemon.embedded import EmbeddedFarm, UpOptions, not_hermetic_note, start_farm, stop_farm
from daemon.paths import default_state_dir
from daemon.runtime import LogSection, configure_logging
from daemon.summit.planning.states import TaskState
from daemon.terminal import printable

#: The task states in the order of their lifecycle, as summit defines them.
STATE_ORDER = tuple(str(state) for state in TaskState)
STATE_STYLE = {"failed": "red", "blocked": "yellow", "building": "cyan", "completed": "green",
               "ready": "blue", "publishing": "magenta"}


def _port(text: str) -> int:
    """summit's port; vessel takes the next one, so 65535 is out (0: any free ports)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65534:
        raise argparse.ArgumentTypeError(f"{port} is not a port from 0 to 65534")
    return port


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a number of seconds above 0")
    return seconds


def register(subparsers: Any) -> None:
    up = subparsers.add_parser("up", help="run summit, builders, vessel and the journal here")
    up.add_argument("--recipes", help="recipe repository path or URL "
                                      "(default: the bundled examples)")
    up.add_argument("--branch", default="main")
    up.add_argument("--builders", type=int, default=2, help="builders to run (default 2)")
    up.add_argument("--backend", choices=["script", "noop"], default="script")
    up.add_argument("--broker", default="memory://",
                    help="amqp:// URL of RabbitMQ, or the nodes of a cluster comma-separated "
                         "(default: the embedded broker)")
    up.add_argument("--mqtt", default="memory://",
                    help="mqtt:// URL of Mosquitto (default: in-process telemetry)")
    up.add_argument("--state", type=Path, default=None,
                    help="state directory (default: $CAIRN_STATE_DIR or ~/.local/state/cairn)")
    up.add_argument("--port", type=_port, default=8080,
                    help="summit's port on 127.0.0.1; the repository is served on PORT+1")
    up.add_argument("--poll-interval", type=_seconds, default=5.0,
                    help="seconds between fetches of the recipe repository")
    up.add_argument("--until-idle", action="store_true",
                    help="exit once nothing is left to do (status 0 only if all completed)")
    up.add_argument("--summary-json", type=Path, help="write a JSON summary here at exit")
    where = up.add_mutually_exclusive_group()
    where.add_argument("--environment", metavar="FILE|DIGEST", default=None,
                       help="build in this environment: a declaration (.toml, made once and "
                            "cached), an archive (.tar.zst), or the digest of one made here "
                            "(default: the bundled declaration, or this machine's own system "
                            "when it cannot be made here)")
    where.add_argument("--host", action="store_true",
                       help="build on this machine's own system (not hermetic)")
    up.set_defaults(func=_up)


def _table(farm: EmbeddedFarm) -> Group:
    counts = farm.counts()
    states = Table(title="tasks", show_header=False, box=None)
    for state in STATE_ORDER:
        if counts.get(state):
            states.add_row(Text(state, style=STATE_STYLE.get(state, "")), str(counts[state]))
    builders = Table(title="builders", show_header=False, box=None)
    names = {t.task_id: t.source for t in farm.tasks()}
    for name, running in farm.building().items():
        doing = ", ".join(f"{names.get(i, '?')} (#{i})" for i in running) or "idle"
        builders.add_row(name, doing)
    header = Text(f"dashboard {farm.summit_url}   repository {farm.vessel_url}   "
                  f"recipes {farm.repository_url}", style="bold")
    return Group(header, states, builders)


def _line(farm: EmbeddedFarm) -> str:
    counts = farm.counts()
    return "tasks: " + (", ".join(f"{s} {counts[s]}" for s in STATE_ORDER if counts.get(s))
                        or "none yet")


async def _run(farm: EmbeddedFarm, args: argparse.Namespace, stop: asyncio.Event) -> None:
    console = Console(stderr=False)
    quiet_since: float | None = None
    last = ""

    async def tick() -> bool:
        nonlocal quiet_since
        if not args.until_idle:
            return False
        if await farm.idle():
            quiet_since = quiet_since or asyncio.get_running_loop().time()
            return asyncio.get_running_loop().time() - quiet_since >= 1.0
        quiet_since = None
        return False

    if console.is_terminal:
        with Live(_table(farm), console=console, refresh_per_second=4) as live:
            while not stop.is_set():
                live.update(_table(farm))
                if await tick():
                    return
                await _pause(stop, 0.25)
        return
    print(f"dashboard {farm.summit_url}  repository {farm.vessel_url}", flush=True)
    while not stop.is_set():
        line = _line(farm)
        if line != last:
            print(line, flush=True)
            last = line
        if await tick():
            return
        await _pause(stop, 0.25)


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def _up(args: argparse.Namespace) -> int:
    """Open the log file outside the event loop, then run the farm."""
    state: Path = (args.state or default_state_dir()).resolve()
    state.mkdir(parents=True, exist_ok=True)
    chosen = _environment(args)
    with (state / "cairn.log").open("a", encoding="utf-8") as log_file:
        return asyncio.run(_up_async(args, state, log_file, chosen))


def _environment(args: argparse.Namespace) -> Chosen:
    """Choose (and make, the first time) the build environment, and say what was chosen."""
    if args.host:
        chosen = Chosen(None, "--host asks for it")
    elif args.backend == "noop" and args.environment is None:
        chosen = Chosen(None, "the noop backend runs no build step")
    else:
        chosen = choose(args.environment, Console())
        if chosen.environment is None:
            print(f"build environment: cannot make one here: {chosen.why}", flush=True)
    env = chosen.environment
    if env is not None:
        print(f"build environment: {env.name} sha256:{env.digest} ({env.archive})", flush=True)
    else:
        print(not_hermetic_note(chosen.why), flush=True)
    return chosen


async def _up_async(args: argparse.Namespace, state: Path, log_file: Any,
                    chosen: Chosen) -> int:
    configure_logging(LogSection(), service="up", stream=log_file)
    options = UpOptions(state=state, recipes=args.recipes, branch=args.branch,
                        builders=args.builders, backend=args.backend, broker=args.broker,
                        mqtt=args.mqtt, port=args.port, poll_interval=args.poll_interval,
                        environment=chosen.environment, host_reason=chosen.why)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    farm = await start_farm(options)
    try:
        await _run(farm, args, stop)
        summary = farm.summary()
    finally:
        await stop_farm(farm)
    print(_line(farm), flush=True)
    print(f"repository: {summary['repository']['path']}", flush=True)
    env = chosen.environment
    print("packages: not hermetic (built on this machine's own system)" if env is None else
          f"packages: built in build environment {env.name} sha256:{env.digest}", flush=True)
    for failed in summary["failed"]:
        # The reason quotes build output: escaped, so it cannot drive the terminal.
        print(f"failed: {failed['source']} (task {failed['id']}): "
              f"{printable(str(failed['reason']))}", file=sys.stderr)
    if args.summary_json:
        text = json.dumps(summary, indent=2) + "\n"
        await asyncio.to_thread(args.summary_json.write_text, text)
    if not args.until_idle:
        return 0
    return 0 if farm.all_completed() else 1
