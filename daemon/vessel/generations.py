"""Generation directories on disk and the ``current`` pointer: atomic writes and switches.

Why this shape: a reader (``cairn channel verify``, a builder, a web server) may read a
channel at any moment, including while vessel is killed. So:

* an index part is written under a temporary name, fsynced and renamed to its hash before
  any root that lists it exists; a part file is never rewritten (its name is its content);
* a generation directory is built under a temporary name (``.tmp-…``), every file fsynced,
  the directory fsynced, then renamed into place — it appears complete or not at all, and
  is never modified afterwards;
* ``current`` is a symlink replaced by ``rename(2)`` of a fresh symlink over it, so it
  always names one complete generation, old or new, never nothing.

Functions here are synchronous file-system code; the async callers run them in a thread.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from daemon.formats import layout as repo_layout
from daemon.vessel import minisign
from daemon.vessel.config import Layout
from daemon.vessel.pool import fsync_dir

INDEX, SIGNATURE = repo_layout.INDEX, repo_layout.SIGNATURE


@dataclass(frozen=True)
class GenerationDir:
    channel: str
    arch: str
    generation: int | None  # None: a temporary directory left by a crash
    path: Path


def write_generation(layout: Layout, key: minisign.SecretKey, channel: str, arch: str,
                     generation: int, root: bytes, parts: dict[str, bytes]) -> Path:
    """Write the new ``parts`` (by hash), then ``index.json`` (the root) and its
    ``.minisig`` as a new immutable directory."""
    write_parts(layout, parts)
    parent = layout.arch_dir(channel, arch)
    parent.mkdir(parents=True, exist_ok=True)
    final = parent / str(generation)
    if final.exists():
        # Only an uncommitted leftover can hold a number the database hands out again.
        shutil.rmtree(final)
    tmp = parent / f".tmp-{generation}-{secrets.token_hex(4)}"
    tmp.mkdir()
    trusted = repo_layout.trusted_comment(channel, arch, generation, int(time.time()))
    signature = minisign.sign(key, root, trusted_comment=trusted,
                              untrusted_comment=f"cairn {channel}/{arch} generation {generation}")
    _write_file(tmp / INDEX, root)
    _write_file(tmp / SIGNATURE, signature.encode())
    fsync_dir(tmp)
    os.rename(tmp, final)
    fsync_dir(parent)
    return final


def write_parts(layout: Layout, parts: dict[str, bytes]) -> None:
    """Place each part under its hash, durably; one already there is the same bytes."""
    if not parts:
        return
    layout.parts.mkdir(parents=True, exist_ok=True)
    for sha, data in parts.items():
        final = layout.part_file(sha)
        if final.is_file():
            continue
        tmp = final.with_name(f".{final.name}.{secrets.token_hex(4)}.tmp")
        _write_file(tmp, data)
        os.rename(tmp, final)
    fsync_dir(layout.parts)


def collect_parts(layout: Layout, stored: set[str]) -> list[str]:
    """Remove part files (and temporary leftovers) that no stored part row names."""
    removed: list[str] = []
    if not layout.parts.is_dir():
        return removed
    for path in layout.parts.iterdir():
        sha = path.name.removesuffix(".json")
        if path.name.startswith(".") or sha not in stored:
            path.unlink(missing_ok=True)
            removed.append(sha)
    return removed


def switch_current(layout: Layout, channel: str, arch: str, generation: int) -> None:
    """Point ``current`` at ``generation`` with one atomic rename."""
    link = layout.current(channel, arch)
    if read_current(layout, channel, arch) == generation:
        return
    tmp = link.with_name(f".current-{secrets.token_hex(4)}")
    os.symlink(str(generation), tmp)
    os.replace(tmp, link)
    fsync_dir(link.parent)


def read_current(layout: Layout, channel: str, arch: str) -> int | None:
    try:
        target = os.readlink(layout.current(channel, arch))
    except (FileNotFoundError, OSError):
        return None
    return int(target) if target.isdigit() else None


def scan(layout: Layout) -> Iterator[GenerationDir]:
    """Every generation directory and temporary leftover under the repository root."""
    if not layout.root.is_dir():
        return
    for channel_dir in sorted(layout.root.iterdir()):
        if (channel_dir.name in repo_layout.RESERVED or not channel_dir.is_dir()
                or channel_dir.is_symlink()):
            continue
        for arch_dir in sorted(p for p in channel_dir.iterdir() if p.is_dir()):
            for entry in sorted(arch_dir.iterdir()):
                if entry.name.startswith((".tmp-", ".current-")):
                    yield GenerationDir(channel_dir.name, arch_dir.name, None, entry)
                elif entry.name.isdigit() and entry.is_dir() and not entry.is_symlink():
                    yield GenerationDir(channel_dir.name, arch_dir.name, int(entry.name), entry)


def remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.exists():
        shutil.rmtree(path)


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data``: temporary file, fsync, rename, fsync the directory."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    _write_file(tmp, data, mode)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _write_file(path: Path, data: bytes, mode: int = 0o644) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


