"""``cairn deploy``: write (or check) the generated deployment files.

``--check`` compares instead of writing and exits 1 on a difference, so CI (and the test
suite) notice when the topology in :mod:`events.topology` moved and ``deploy/`` did not.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from daemon.deploy.mosquitto import DEFAULT_SUMMIT_USER, render_acl
from daemon.deploy.rabbitmq import (
    DEFAULT_VHOST,
    DeployError,
    build_definitions,
    password_hash,
    render,
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("deploy", help="generate RabbitMQ and Mosquitto files")
    sub = parser.add_subparsers(dest="deploy_command", metavar="WHAT", required=True)

    rabbit = sub.add_parser("rabbitmq-definitions",
                            help="definitions.json for rabbitmqctl import_definitions")
    rabbit.add_argument("--vhost", default=DEFAULT_VHOST, help="virtual host (default cairn)")
    rabbit.add_argument("--user-prefix", default="",
                        help="prefix of every user name, e.g. 'farm1-' (default none)")
    rabbit.add_argument("--password-file", dest="passwords", action="append", default=[],
                        metavar="USER=FILE",
                        help="hash the password in FILE for USER (repeat); without it the "
                             "user has no password and cannot log in until change_password")
    _output_options(rabbit)
    rabbit.set_defaults(func=_rabbitmq)

    acl = sub.add_parser("mosquitto-acl", help="Mosquitto acl_file for summit and builders")
    acl.add_argument("--builder", dest="builders", action="append", required=True,
                     help="a builder's name = its Mosquitto user name (repeat)")
    acl.add_argument("--summit-user", default=DEFAULT_SUMMIT_USER)
    _output_options(acl)
    acl.set_defaults(func=_mosquitto)


def _output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", "-o", type=Path, default=None,
                        help="file to write (default: standard output)")
    parser.add_argument("--check", action="store_true",
                        help="compare with --output instead of writing; exit 1 if different")


def _rabbitmq(args: argparse.Namespace) -> int:
    hashes = {user: password_hash(_read_password(path))
              for user, path in (_pair(p) for p in args.passwords)}
    definitions = build_definitions(vhost=args.vhost,
                                    user_prefix=args.user_prefix, password_hashes=hashes)
    if args.check and hashes:
        raise DeployError("--check cannot be combined with --password-file "
                          "(the hashes are salted at random)")
    return _emit(render(definitions), args)


def _mosquitto(args: argparse.Namespace) -> int:
    return _emit(render_acl(args.builders, args.summit_user), args)


def _pair(text: str) -> tuple[str, Path]:
    user, sep, path = text.partition("=")
    if not sep or not user or not path:
        raise DeployError(f"--password-file {text!r}: expected USER=FILE")
    return user, Path(path)


def _read_password(path: Path) -> str:
    try:
        password = path.read_text().rstrip("\n")
    except OSError as exc:
        raise DeployError(f"cannot read the password file {path}: {exc.strerror}") from None
    if not password:
        raise DeployError(f"the password file {path} is empty")
    return password


def _emit(text: str, args: argparse.Namespace) -> int:
    output: Path | None = args.output
    if args.check:
        if output is None:
            raise DeployError("--check needs --output FILE to compare with")
        current = output.read_text() if output.exists() else ""
        if current != text:
            print(f"{output} is out of date: regenerate it with the same command "
                  "without --check", file=sys.stderr)
            return 1
        print(f"{output} is up to date")
        return 0
    if output is None:
        sys.stdout.write(text)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)
        print(f"wrote {output}", file=sys.stderr)
    return 0
