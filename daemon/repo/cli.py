"""``cairn repo verify PATH_OR_URL``: the check any user can run against a repository."""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path
from typing import Any

from daemon.repo.verify import VerifyError, verify_repository


def register(subparsers: Any) -> None:
    repo = subparsers.add_parser("repo", help="check a published package repository")
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
    verify.set_defaults(func=_verify)


async def _verify(args: argparse.Namespace) -> int:
    key_text = None
    if args.key is not None:
        try:
            key_text = args.key.read_text()
        except OSError as exc:
            raise VerifyError(f"cannot read key {args.key}: {exc.strerror}") from None
    report = await verify_repository(args.location, channel=args.channel, arch=args.arch,
                                     key_text=key_text)
    where = f"{args.location} {report.channel}/{report.arch}"
    if report.ok:
        print(f"ok: {where} generation {report.generation}: signature by key "
              f"{report.key_id} valid, {report.checked} packages match")
        return 0
    print(f"FAILED: {where}: {len(report.problems)} problem(s)", file=sys.stderr)
    for problem in report.problems:
        print(f"  {problem}", file=sys.stderr)
    return 1
