"""Dependency packages unpacked once each, read-only, for build roots to link from.

Layout: ``CACHE/<sha256>/`` per package archive (its files, read-only), ``CACHE/.lock``.
A package is unpacked under a temporary name and renamed into place, so a tree under its final
name is always complete. Builders hold the lock shared while they unpack and link
(:meth:`PackageCache.using`); :meth:`PackageCache.evict` takes it exclusively, without
waiting, and removes the least recently used trees beyond ``keep``. Removing a tree never
harms a root already assembled from it: the root's hard links keep the files alive.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from daemon.avalanche.unpack import unpack as unpack_package
from daemon.package import ARCHIVE_SUFFIX

from . import archive

DEFAULT_KEEP = 2000


class PackageCache:
    """See the module docstring."""

    def __init__(self, root: Path, *, keep: int = DEFAULT_KEEP) -> None:
        self.root = root
        self.keep = keep
        root.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def using(self) -> Iterator[None]:
        """Hold the cache against eviction while unpacking and linking from it."""
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    def unpacked(self, archive_path: Path, sha256: str) -> Path:
        """The unpacked tree of ``archive_path`` (whose sha256 the caller verified)."""
        final = self.root / sha256
        if final.is_dir():
            os.utime(final)  # its last use, for eviction
            return final
        staging = self.root / f".{sha256}.{os.getpid()}.{time.monotonic_ns()}"
        try:
            unpack_package(archive_path, staging, name=f"{sha256}{ARCHIVE_SUFFIX}")
            _read_only(staging)
            try:
                os.rename(staging, final)
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
        finally:
            if staging.exists():
                _remove(staging)
        return final

    def evict(self, keep: int | None = None) -> int:
        """Remove the least recently used trees beyond ``keep`` unless the cache is in use;
        return how many went."""
        keep = self.keep if keep is None else keep
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0
            trees = [p for p in self.root.iterdir() if not p.name.startswith(".")]
            trees.sort(key=lambda p: p.stat().st_mtime, reverse=True)
            for tree in trees[keep:]:
                _remove(tree)
            return max(0, len(trees) - keep)
        finally:
            os.close(fd)


def _read_only(root: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*filenames, *dirnames]:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.chmod(path, stat.S_IMODE(os.lstat(path).st_mode) & 0o555)


def _remove(path: Path) -> None:
    archive.make_writable(path)
    shutil.rmtree(path, ignore_errors=True)
