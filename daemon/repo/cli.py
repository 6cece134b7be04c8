"""``cairn channel verify PATH_OR_URL``: the check any user can run against a channel of a
published package repository. ``cairn repo verify`` is the old spelling, kept as an alias for
one release (``repo`` also named the recipe repositories, which ``cairn recipes`` shows)."""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path
from typing import Any

from daemon.repo.seen import SeenGenerations, default_seen_path
from daemon.repo.verify import VerifyError, verify_repository


def register(subparsers: Any) -> None:
    repo = subparsers.add_parser("channel", aliases=["repo"],
                                 help="check a channel of a published package repository")
    sub = repo.add_subparsers(dest="repo_command", metavar="COMMAND", required=True)
    verify = sub.add_parser(
        "verify", help="verify the index signature and every package's size and sha256")
    verify.add_argument("location", metavar="PATH_OR_URL",
                        help="repository root: a directory or an http(s) URL")
    verify.add_argument("--channel", default="volatile")
    verify.add_argument("--arch", default=platform.machine() or "x86_64")
    verify.add_argument("--key", type=Path, default=None,
                        help="minisign public key to trust (default: the repository's "
                             "minisign.pub, which proves integrity but not origin)")
    verify.add_argument("--require-key", action="store_true",
                        help="fail instead of warning when no --key is given")
    verify.add_argument("--seen-file", type=Path, default=None,
                        help="where the highest generation seen per repository is kept "
                             "(default: $CAIRN_STATE_DIR/repo-seen.json)")
    verify.add_argument("--allow-rollback", action="store_true",
                        help="accept a generation older than one seen before, and remember "
                             "it as the newest (after the operator reset the channel)")
    verify.add_argument("--allow-not-hermetic", action="store_true",
                        help="accept packages built on a builder host's own system (in no "
                             "build environment), with a warning")
    verify.set_defaults(func=_verify)


async def _verify(args: argparse.Namespace) -> int:
    if args.command == "repo":
        print("cairn: note: 'cairn repo verify' is now 'cairn channel verify' (the old name "
              "goes in the next release)", file=sys.stderr)
    key_text = None
    if args.key is not None:
        try:
            key_text = args.key.read_text()
        except OSError as exc:
            raise VerifyError(f"cannot read key {args.key}: {exc.strerror}") from None
    elif args.require_key:
        raise VerifyError("--require-key: give the minisign public key you trust with --key")
    seen = SeenGenerations(args.seen_file or default_seen_path())
    report = await verify_repository(args.location, channel=args.channel, arch=args.arch,
                                     key_text=key_text, seen=seen,
                                     allow_rollback=args.allow_rollback,
                                     allow_not_hermetic=args.allow_not_hermetic)
    where = f"{args.location} {report.channel}/{report.arch}"
    if key_text is None:
        print(f"warning: no --key given: trusted the key the repository serves "
              f"({report.key_id}), which proves the index was not altered after signing but "
              "not who signed it; pass --key with the key you trust (--require-key makes "
              "this an error)", file=sys.stderr)
    if report.not_hermetic and args.allow_not_hermetic:
        print(f"warning: {len(report.not_hermetic)} package(s) are not hermetic (built on a "
              f"builder host's own system): {', '.join(report.not_hermetic)}", file=sys.stderr)
    if report.ok:
        before = "" if report.previous is None else f" (highest seen before: {report.previous})"
        print(f"ok: {where} generation {report.generation}{before}: signature by key "
              f"{report.key_id} valid, {report.checked} packages match")
        return 0
    print(f"FAILED: {where}: {len(report.problems)} problem(s)", file=sys.stderr)
    for problem in report.problems:
        print(f"  {problem}", file=sys.stderr)
    return 1
