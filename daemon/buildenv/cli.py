"""``cairn buildenv build|push|ls|show|pull``: make, publish and inspect build environments.

``build`` makes an environment from a declaration (the bundled one by default) with visible
progress; ``push`` stores an archive in vessel (on vessel's host, like ``cairn vessel
promote``); ``ls`` and ``show`` read vessel's state directory, a vessel over HTTP (signatures
checked with ``--key``), or a builder's cache; ``pull`` fills a builder's cache by digest.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import msgspec
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, SpinnerColumn, TextColumn

from daemon.paths import default_cache_dir, default_state_dir
from daemon.vessel import minisign

from . import archive, declaration
from .build import Progress as BuildProgress
from .build import build
from .cache import EnvironmentCache
from .errors import BuildEnvError
from .manifest import EnvListing, EnvRecord, decode_record, resolve
from .remote import Origin, fetch_listing, fetch_record

DEFAULT_DECLARATION = "default.toml"


def bundled_declaration() -> Path:
    """The declaration shipped with cairn (a minimal Debian with a C toolchain)."""
    return Path(str(resources.files("daemon.buildenv").joinpath(DEFAULT_DECLARATION)))


def default_out_dir() -> Path:
    return default_cache_dir() / "environments" / "built"


def default_env_cache() -> Path:
    return default_cache_dir() / "environments" / "cache"


def register(subparsers: Any) -> None:
    top = subparsers.add_parser("buildenv", help="build environments: build, push, list, show")
    sub = top.add_subparsers(dest="buildenv_command", metavar="COMMAND", required=True)

    p = sub.add_parser("build", help="build an environment from a declaration (TOML)")
    p.add_argument("file", type=Path, nargs="?", default=None,
                   help="the declaration (default: the bundled minimal Debian with gcc)")
    p.add_argument("--out", type=Path, default=None,
                   help=f"where the archive and record go (default: {default_out_dir()})")
    p.add_argument("--work", type=Path, default=None,
                   help="where the tree is made (default: inside --out)")
    p.add_argument("--push", type=Path, default=None, metavar="VESSEL_STATE",
                   help="also store it in the vessel whose state directory this is")
    p.set_defaults(func=_build)

    p = sub.add_parser("push", help="store an environment archive in vessel (run on its host)")
    p.add_argument("archive", type=Path)
    p.add_argument("--state", type=Path, default=None,
                   help="vessel's state directory (default: $CAIRN_STATE_DIR/vessel)")
    p.set_defaults(func=_push)

    where = argparse.ArgumentParser(add_help=False)
    group = where.add_mutually_exclusive_group()
    group.add_argument("--state", type=Path, default=None, help="vessel's state directory")
    group.add_argument("--url", default=None, help="vessel's base URL (http://host:port)")
    group.add_argument("--cache", type=Path, default=None, help="a builder's environment cache")
    where.add_argument("--key", type=Path, default=None,
                       help="vessel's minisign public key (required with --url)")

    p = sub.add_parser("ls", parents=[where], help="list environments")
    p.set_defaults(func=_ls)
    p = sub.add_parser("show", parents=[where], help="show an environment's manifest")
    p.add_argument("ref", help="a name, a digest (or unique prefix), or a .tar.zst/.json file")
    p.add_argument("--provides", action="store_true", help="list every provider")
    p.add_argument("--json", action="store_true", help="print the record as JSON")
    p.set_defaults(func=_show)
    p = sub.add_parser("pull", parents=[where], help="pull an environment into a cache")
    p.add_argument("ref", help="a name or a digest (or unique prefix) that vessel lists")
    p.set_defaults(func=_pull)


class Reporter:
    """Progress of a build: on a terminal, rich lines (one per phase, the tool's latest
    output, a bar); elsewhere (a log, a pipe), one plain line per phase and per stage of
    mmdebstrap."""

    def __init__(self, console: Console, prefix: str = "") -> None:
        self.console = console
        self.live = console.is_terminal
        self.prefix = prefix
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                                 BarColumn(), DownloadColumn(), console=console,
                                 transient=False, disable=not self.live)
        self.task: Any = None
        self.title = ""

    def __enter__(self) -> Reporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.task is not None and exc[0] is None:
            self.progress.update(self.task, description=f"[green]✓[/] {self.title}",
                                 completed=1, total=1)
        self.progress.stop()

    def phase(self, text: str) -> None:
        if not self.live:
            print(f"{self.prefix}{text}", file=self.console.file, flush=True)
            return
        if self.task is not None:
            self.progress.update(self.task, description=f"[green]✓[/] {self.title}",
                                 completed=1, total=1)
        self.title = escape(f"{self.prefix}{text}")
        self.task = self.progress.add_task(self.title, total=None)

    def line(self, text: str) -> None:
        if not self.live:
            # mmdebstrap's own stage lines ("I: downloading packages with apt...").
            if text.startswith("I: "):
                print(f"{self.prefix}{text[3:]}", file=self.console.file, flush=True)
            return
        if self.task is not None and text.strip():
            self.progress.update(self.task, description=f"{self.title} [dim]{escape(text[:80])}[/]")

    def packed(self, done: int, total: int) -> None:
        if self.task is not None:
            self.progress.update(self.task, completed=done, total=total)

    def hooks(self) -> BuildProgress:
        return BuildProgress(phase=self.phase, line=self.line, packed=self.packed)


def _build(args: argparse.Namespace) -> int:
    path = args.file or bundled_declaration()
    decl = declaration.load(path)
    with Reporter(Console(stderr=True)) as reporter:
        built = build(decl, args.out or default_out_dir(), cache_dir=default_cache_dir(),
                      work_dir=args.work, progress=reporter.hooks())
    m = built.record.manifest
    times = ", ".join(f"{k} {v:.1f} s" for k, v in built.timings.items())
    print(f"sha256:{built.record.digest}  {m.name}  {len(m.packages)} packages, "
          f"{len(m.provides)} provides, {built.record.size / 1e6:.1f} MB ({times})")
    print(f"archive: {built.archive}\nrecord:  {built.record_path}")
    if m.unresolved:
        print(f"warning: nothing in the environment provides {', '.join(m.unresolved)}",
              file=sys.stderr)
    if args.push is not None:
        _store(args.push).push(built.archive)
        print(f"pushed to {args.push}")
    return 0


def _store(state: Path | None) -> Any:
    from daemon.vessel.config import VesselConfig
    from daemon.vessel.environments import EnvironmentStore

    layout = VesselConfig(state_dir=state or default_state_dir() / "vessel").layout
    key = minisign.load_or_create_key(layout.secret_key)
    return EnvironmentStore(layout, key)


def _push(args: argparse.Namespace) -> int:
    if not args.archive.is_file():
        raise BuildEnvError(f"{args.archive} does not exist")
    record, new = _store(args.state).push(args.archive)
    verb = "stored" if new else "already stored"
    print(f"{verb}: {record.manifest.name} sha256:{record.digest} "
          f"({record.size / 1e6:.1f} MB)")
    return 0


def _origin(args: argparse.Namespace) -> Origin:
    if args.key is None:
        raise BuildEnvError("--url needs --key: vessel's minisign.pub, to check signatures")
    try:
        key = minisign.parse_public_key(args.key.read_text())
    except OSError as exc:
        raise BuildEnvError(f"cannot read {args.key}: {exc}") from exc
    return Origin(args.url, key)


def _listing(args: argparse.Namespace) -> EnvListing:
    if args.url is not None:
        return fetch_listing(_origin(args))
    listing: EnvListing = _store(args.state).listing()
    return listing


def _ls(args: argparse.Namespace) -> int:
    """Plain columns (digest first, full): easy to read and to pipe into ``show``/``pull``."""
    if args.cache is not None:
        for e in EnvironmentCache(args.cache).entries():
            used = datetime.fromtimestamp(e.last_used, UTC).isoformat(timespec="seconds")
            print(f"{e.digest}  {e.name:<24} last used {used}{'  in use' if e.in_use else ''}")
        return 0
    for s in _listing(args).environments:
        print(f"{s.digest}  {s.name:<24} {s.arch:<8} {s.size / 1e6:>8.1f} MB "
              f"{s.packages:>5} packages {s.provides:>6} provides  pushed {s.pushed}")
    return 0


def _record(args: argparse.Namespace) -> EnvRecord:
    local = Path(args.ref)
    if local.is_file():
        if local.name.endswith(".json"):
            return decode_record(local.read_bytes(), what=str(local))
        manifest = archive.read_manifest(local)
        return EnvRecord(digest=archive.sha256_file(local), size=local.stat().st_size,
                         manifest=manifest)
    if args.cache is not None:
        for entry in EnvironmentCache(args.cache).entries():
            if entry.digest.startswith(args.ref.removeprefix("sha256:")) or entry.name == args.ref:
                with EnvironmentCache(args.cache).use(entry.digest) as env:
                    return env.record
        raise BuildEnvError(f"the cache {args.cache} holds no environment {args.ref!r}")
    if args.url is not None:
        origin = _origin(args)
        return fetch_record(origin, resolve(fetch_listing(origin), args.ref))
    store = _store(args.state)
    record: EnvRecord = store.record(store.resolve(args.ref))
    return record


def _show(args: argparse.Namespace) -> int:
    record = _record(args)
    if args.json:
        print(json.dumps(msgspec.to_builtins(record), indent=2))
        return 0
    m = record.manifest
    print(f"{m.name}  sha256:{record.digest}  {m.arch}  {record.size / 1e6:.1f} MB packed, "
          f"{m.files} files, {m.size / 1e6:.1f} MB unpacked")
    print(f"declaration sha256:{m.declaration}  source_date_epoch {m.source_date_epoch}")
    if m.base is not None:
        print(f"base: debian {m.base.suite} ({m.base.variant}) from {'; '.join(m.base.sources)}")
    if m.layer is not None:
        print(f"layer: {m.layer.index_url} ({m.layer.channel} generation {m.layer.generation})")
    print(f"packages ({len(m.packages)}):")
    for pkg in m.packages:
        print(f"  {pkg.name} {pkg.version} [{pkg.origin}]")
    kinds: dict[str, int] = {}
    for provider in m.provides:
        kind = provider.split("(", 1)[0]
        kinds[kind] = kinds.get(kind, 0) + 1
    print(f"provides: {len(m.provides)} (" + ", ".join(f"{k} {n}" for k, n in
                                                       sorted(kinds.items())) + ")")
    if args.provides:
        for provider in m.provides:
            print(f"  {provider}")
    if m.unresolved:
        print(f"unresolved: {', '.join(m.unresolved)}")
    return 0


def _pull(args: argparse.Namespace) -> int:
    if args.url is None:
        raise BuildEnvError("pull needs --url (vessel's base URL) and --key")
    origin = _origin(args)
    digest = resolve(fetch_listing(origin), args.ref)
    cache = EnvironmentCache(args.cache or default_env_cache(), line=print)
    with cache.use(digest, origin) as env:
        print(f"{env.manifest.name} sha256:{digest} at {env.root}")
    return 0
