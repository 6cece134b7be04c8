"""What a build writes to the builder's disk, measured while it runs.

The output cap is watched during the build, not only checked after it: every few tenths of a
second (the interval grows with the time one measurement takes, so a tree of millions of
files is not walked back to back) the build's tree is walked, and a build whose install tree
passes the cap is stopped then (:class:`.errors.OutputLimitExceeded`, outcome
``output-limit``) — a build that writes for ever does not fill the builder's disk first. The
same walk records the peak size of the whole build tree (sources, work, install tree, build
dependencies): the disk a build of the source takes, which summit learns from its history.

Sizes count regular files' bytes, each inode once; a file hard-linked from outside the tree
(the build root's packages, linked from the builder's unpack cache) takes no disk of the
build's own and is not counted towards the tree's size.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import OutputLimitExceeded

#: Shortest time between two measurements of a build's tree (seconds).
MIN_INTERVAL_S = 0.3
#: A measurement may take at most this share of the time (the interval grows after a slow one).
MAX_SHARE = 0.1


@dataclass
class _Walk:
    """One walk of a tree: the bytes under the install tree, and of the tree as a whole."""

    install: Path
    install_bytes: int = 0
    #: inode → (size, links found in the tree, links it has)
    inodes: dict[tuple[int, int], list[int]] = field(default_factory=dict)

    def visit(self, path: str, under_install: bool) -> None:
        try:
            entries = list(os.scandir(path))
        except OSError:
            return
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(info.st_mode):
                self.visit(entry.path, under_install or entry.path == str(self.install))
            elif stat.S_ISREG(info.st_mode):
                if under_install:
                    self.install_bytes += info.st_size
                key = (info.st_dev, info.st_ino)
                seen = self.inodes.get(key)
                if seen is None:
                    self.inodes[key] = [info.st_size, 1, info.st_nlink]
                else:
                    seen[1] += 1

    @property
    def tree_bytes(self) -> int:
        """Bytes held by files with no link outside the tree, each counted once."""
        return sum(size for size, found, links in self.inodes.values() if found >= links)


def measure(root: Path, install: Path) -> tuple[int, int]:
    """(bytes of the install tree's files, bytes the whole tree holds on disk)."""
    walk = _Walk(install)
    walk.visit(str(root), root == install)
    return walk.install_bytes, walk.tree_bytes


@dataclass
class DiskMeter:
    """The output cap, the largest output measured against it (install tree, then packages),
    and the peak size of the build's tree."""

    cap: int | None = None
    output_bytes: int = 0
    disk_bytes: int = 0
    _root: Path | None = None
    _install: Path | None = None
    _install_now: int = 0
    _next: float = 0.0

    def watch(self, root: Path, install: Path) -> None:
        """Measure this tree from now on."""
        self._root, self._install = root, install

    def check(self, size: int, what: str) -> None:
        """``size`` bytes of output (``what``): over the cap raises."""
        self.output_bytes = max(self.output_bytes, size)
        if self.cap is not None and size > self.cap:
            raise OutputLimitExceeded(f"{what} hold {size} bytes, over the output cap of "
                                      f"{self.cap} bytes")

    def sample(self) -> None:
        """Measure the tree now (the peak only: a cap is enforced by :meth:`poll`)."""
        if self._root is None or self._install is None:
            return
        started = time.monotonic()
        install_bytes, tree_bytes = measure(self._root, self._install)
        took = time.monotonic() - started
        self._next = time.monotonic() + max(MIN_INTERVAL_S, took / MAX_SHARE)
        self.output_bytes = max(self.output_bytes, install_bytes)
        self.disk_bytes = max(self.disk_bytes, tree_bytes)
        self._install_now = install_bytes

    def poll(self) -> OutputLimitExceeded | None:
        """While a command runs: measure when due; the error that must stop the build when
        its install tree is over the cap, else ``None``."""
        if self._root is None or time.monotonic() < self._next:
            return None
        self.sample()
        size = self._install_now
        if self.cap is not None and size > self.cap:
            return OutputLimitExceeded(f"the install tree's files hold {size} bytes, over the "
                                       f"output cap of {self.cap} bytes; the build was stopped")
        return None
