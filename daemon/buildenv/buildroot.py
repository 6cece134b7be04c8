"""A per-build root: an environment plus the build's dependencies, without copying either.

The root is a *hard-link farm*: its directories are new (so each build gets its own tree and
the dependencies merge into ``/usr``), its files are hard links to the read-only cache, its
symlinks are recreated. Assembling one costs a ``mkdir`` per directory and a ``link`` per file
(``bench/buildroot.py`` measures it). The sandbox mounts the root read-only as ``/``, so a
build can never modify a cached file through a link; outside the sandbox nothing writes to
it, and the cached files have no write bits.

Dependencies come from :class:`.pkgcache.PackageCache`: each package archive unpacked once,
read-only, keyed by its sha256. They are laid over the environment in order; a path that resolves
through one of the root's symlinks (``lib -> usr/lib`` on a merged-``/usr`` base) lands where
the link points inside the root, never outside it. A dependency file that replaces a file of
the environment (or of an earlier dependency) is counted in :attr:`RootStats.replaced`.

The cache and the roots must be on one file system (hard links cannot cross); where they are
not, files are copied and :attr:`RootStats.copied` says how many.
"""

from __future__ import annotations

import errno
import os
import posixpath
import shutil
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import BuildEnvError

_MAX_LINKS = 40


@dataclass
class RootStats:
    dirs: int = 0
    linked: int = 0
    copied: int = 0
    symlinks: int = 0
    replaced: list[str] = field(default_factory=list)
    seconds: float = 0.0


def assemble(env_root: Path, packages: Sequence[Path], dest: Path, *,
             mountpoints: Sequence[Path] = ()) -> RootStats:
    """Make ``dest`` (must not exist) = ``env_root`` + each of ``packages``, in order.

    ``mountpoints`` (absolute paths as the build sees them: its work and install trees) are
    created as empty directories, because the sandbox cannot create them once the root is
    mounted read-only."""
    started = time.perf_counter()
    stats = RootStats()
    dest.mkdir(parents=True)
    _farm(env_root, dest, dest, stats)
    for package in packages:
        _overlay(package, dest, stats)
    for point in mountpoints:
        if not point.is_absolute():
            raise BuildEnvError(f"mount point {point} must be absolute")
        _resolve(dest, str(point).lstrip("/"))
    stats.seconds = time.perf_counter() - started
    return stats


def sandbox_args(root: Path, writable: Sequence[Path]) -> list[str]:
    """bubblewrap's mount arguments for a build in ``root``: the root read-only as ``/``, a
    private ``/dev``, ``/proc`` and ``/tmp``, and only ``writable`` (mount points made by
    :func:`assemble`) writable at their own paths. Namespaces and the rest of the sandbox
    are the caller's (:mod:`daemon.avalanche.process`)."""
    args = ["--ro-bind", str(root), "/", "--dev", "/dev", "--proc", "/proc",
            "--tmpfs", "/tmp"]  # noqa: S108  (a fresh private tmpfs, not the host's /tmp)
    for path in writable:
        args += ["--bind", str(path), str(path)]
    return args


def remove(root: Path) -> None:
    """Remove a root made by :func:`assemble` (its directories are writable by their owner)."""
    shutil.rmtree(root, ignore_errors=False)


def _link(src: str, dst: str, stats: RootStats) -> None:
    try:
        os.link(src, dst)
        stats.linked += 1
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
            raise
        shutil.copy2(src, dst)
        stats.copied += 1


def _farm(src_root: Path, dst_root: Path, dest: Path, stats: RootStats) -> None:
    """Mirror ``src_root`` into the (existing) directory ``dst_root``: new directories, hard
    links for files, copies of symlinks. One ``scandir`` per directory: its entries' types
    come with it, so only directories cost an ``lstat`` (for their mode)."""
    stack = [(str(src_root), str(dst_root))]
    symlink, mkdir, join = os.symlink, os.mkdir, os.path.join
    while stack:
        src_dir, out = stack.pop()
        with os.scandir(src_dir) as entries:
            for entry in entries:
                target = join(out, entry.name)
                if entry.is_symlink():
                    symlink(os.readlink(entry.path), target)
                    stats.symlinks += 1
                elif entry.is_dir(follow_symlinks=False):
                    mode = stat.S_IMODE(entry.stat(follow_symlinks=False).st_mode)
                    mkdir(target, (mode | 0o700) & 0o755)
                    stats.dirs += 1
                    stack.append((entry.path, target))
                else:
                    _link(entry.path, target, stats)


def _overlay(package: Path, dest: Path, stats: RootStats) -> None:
    """Lay ``package``'s tree over ``dest``, resolving paths through ``dest``'s symlinks."""
    for dirpath, dirnames, filenames in os.walk(package):
        rel = os.path.relpath(dirpath, package)
        rel = "" if rel == "." else rel
        here = _resolve(dest, rel) if rel else dest
        for name in list(dirnames):
            src = os.path.join(dirpath, name)
            if os.path.islink(src):
                dirnames.remove(name)
                filenames.append(name)
                continue
            target = here / name
            if target.is_symlink():
                continue  # resolved through the link when its contents are laid down
            if not target.exists():
                os.mkdir(target, 0o755)
                stats.dirs += 1
            elif not target.is_dir():
                raise BuildEnvError(f"dependency {package.name}: {rel}/{name} is a directory, "
                                    "but a file in the environment")
        for name in filenames:
            src = os.path.join(dirpath, name)
            target = here / name
            if target.is_symlink() or target.exists():
                if target.is_dir() and not target.is_symlink():
                    raise BuildEnvError(f"dependency {package.name}: {rel}/{name} is a file, "
                                        "but a directory in the environment")
                stats.replaced.append(posixpath.join(rel, name))
                target.unlink()
            if os.path.islink(src):
                os.symlink(os.readlink(src), target)
                stats.symlinks += 1
            else:
                _link(src, str(target), stats)


def _resolve(dest: Path, rel: str) -> Path:
    """The directory ``rel`` names inside the root ``dest``, following the root's symlinks as
    the build will see them (absolute targets start at ``dest``); never outside ``dest``."""
    parts = [p for p in rel.split("/") if p]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        if part == ".":
            continue
        candidate = dest.joinpath(*resolved, part)
        if candidate.is_symlink():
            hops += 1
            if hops > _MAX_LINKS:
                raise BuildEnvError(f"too many symlinks resolving {rel} in the build root")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p] + parts
            continue
        if not candidate.exists():
            os.mkdir(candidate, 0o755)
        resolved.append(part)
    return dest.joinpath(*resolved)
