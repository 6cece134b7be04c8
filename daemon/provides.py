"""Which providers a package's files back: the one rule avalanche derives ``provides`` with
and vessel checks a builder's claims against.

A package provides:

- its own name, plain and as ``name(x)``;
- ``binary(x)`` for an executable regular file, or a symlink, at ``usr/bin/x``;
- ``sysbinary(x)`` for the same at ``usr/sbin/x``;
- ``pkgconfig(x)`` for a ``x.pc`` file directly in a directory pkg-config searches by
  default (``usr/lib``, ``usr/lib64``, ``usr/share`` or a multiarch ``usr/lib/<triplet>``,
  then ``pkgconfig/``);
- ``soname(lib(arch))`` for an ELF regular file whose ``DT_SONAME`` is ``lib``
  (:mod:`daemon.elf`).

Nothing else is backed by files: a provider of another kind (``python(x)``) or one no file
matches is a claim that only the recipe makes.
"""

from __future__ import annotations

import re
import stat

from daemon.package import FileType, name_provider

_PC_FILE = re.compile(r"^usr/(?:lib|lib64|share|lib/[a-z0-9_]+-linux-[a-z0-9_]+)/pkgconfig/"
                      r"(?P<name>[^/]+)\.pc$")
_EXECUTABLE = stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH


def own_provides(name: str) -> frozenset[str]:
    """What every package provides by being called ``name``."""
    return frozenset({name, name_provider(name)})


def path_provides(path: str, kind: FileType, mode: int) -> frozenset[str]:
    """The providers a member backs by its path, type and mode (not its content).

    ``path`` is relative (``usr/bin/hello``); a symlink counts as an executable, as the
    command it names works when its target does.
    """
    if kind is FileType.DIR:
        return frozenset()
    found: set[str] = set()
    head, _, base = path.rpartition("/")
    runnable = kind is FileType.SYMLINK or bool(mode & _EXECUTABLE)
    if runnable and head == "usr/bin":
        found.add(f"binary({base})")
    elif runnable and head == "usr/sbin":
        found.add(f"sysbinary({base})")
    if (pc := _PC_FILE.match(path)) is not None:
        found.add(f"pkgconfig({pc['name']})")
    return frozenset(found)


def is_soname_provider(provider: str) -> bool:
    """Whether only an ELF file's content can back ``provider``."""
    return provider.startswith("soname(")
