"""Making a Debian base with ``mmdebstrap``.

Reproducibility: ``SOURCE_DATE_EPOCH`` is set (mmdebstrap then removes its logs, the
ldconfig aux-cache and machine ids), ``/etc/hostname`` and ``/etc/resolv.conf`` get fixed
content instead of the host's, and the result is packed by :mod:`.archive` with fixed
metadata. What is left to change the tree is the mirror's content: the same declaration on
the same mirror state gives the same tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from .aptsources import mirror_lines, read_host_sources
from .declaration import Base, Declaration
from .errors import BuildEnvError

MMDEBSTRAP = "mmdebstrap"
INSTALL_HINT = "install it (Debian: apt-get install mmdebstrap)"
#: Replace what mmdebstrap copies from the host: nothing of the host may leak into a base.
_HOOKS = ("echo cairn-build > \"$1/etc/hostname\"", ": > \"$1/etc/resolv.conf\"")


def find_mmdebstrap() -> str:
    found = shutil.which(MMDEBSTRAP)
    if found is None:
        raise BuildEnvError(f"{MMDEBSTRAP} is not installed: {INSTALL_HINT}")
    return found


def sources_for(base: Base, etc_apt: Path | None = None) -> list[str]:
    """The apt source lines for ``base``: its mirror, else the host's sources for its suites."""
    suites = [base.suite, *base.suites]
    if base.mirror is not None:
        components = " ".join(base.components or ["main"])
        return [f"deb {base.mirror} {suite} {components}" for suite in suites]
    where = str(etc_apt) if etc_apt else "/etc/apt/sources.list{,.d/}"
    sources = read_host_sources(etc_apt) if etc_apt else read_host_sources()
    return mirror_lines(sources, suites, base.components, where=where)


def command(decl: Declaration, target: Path, sources: list[str], mmdebstrap: str) -> list[str]:
    """The mmdebstrap command line that makes ``decl``'s base in ``target``."""
    base = decl.base
    assert base is not None
    # Progress comes from mmdebstrap's default "I:" lines.
    argv = [mmdebstrap, "--mode=auto", f"--variant={base.variant}", f"--arch={decl.dpkg_arch}"]
    if base.packages:
        argv.append(f"--include={','.join(base.packages)}")
    argv += [f"--dpkgopt=path-exclude={p}" for p in base.exclude]
    argv += [f"--dpkgopt=path-include={p}" for p in base.keep]
    argv += [f"--customize-hook={hook}" for hook in _HOOKS]
    return [*argv, base.suite, str(target), *sources]


def run(decl: Declaration, target: Path, sources: list[str], *,
        line: Callable[[str], None]) -> None:
    """Make the base in ``target`` (which must not exist), streaming mmdebstrap's output."""
    argv = command(decl, target, sources, find_mmdebstrap())
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(decl.source_date_epoch),
           "LC_ALL": "C.UTF-8"}
    env.pop("APT_CONFIG", None)
    tail: list[str] = []
    with subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, env=env) as proc:
        assert proc.stdout is not None
        for raw in proc.stdout:
            text = raw.decode("utf-8", "replace").rstrip()
            tail = [*tail[-19:], text]
            line(text)
    if proc.returncode != 0:
        why = "\n  ".join(t for t in tail if t)
        hint = ""
        if any("unshare" in t or "Operation not permitted" in t for t in tail):
            hint = ("; mmdebstrap needs root or unprivileged user namespaces with "
                    "subuids (/etc/subuid) for this user")
        raise BuildEnvError(f"mmdebstrap failed (exit {proc.returncode}){hint}:\n  {why}")
