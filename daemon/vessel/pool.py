"""The content-addressed pool: ``pool/<sha[:2]>/<sha>.tar.zst``, each file written once.

Why content-addressed: the same archive promoted to three channels, or kept by ten
generations, is stored once, and a file's name proves what it must contain. A file is
placed by rename after an fsync, so the pool never holds a partial archive under its final
name; a placed file is never rewritten. Files no generation references are removed by
:func:`collect_garbage`, which the caller runs while holding the database's write lock so
that it cannot race with an import placing a file.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from daemon.vessel.config import Layout


def place(layout: Layout, sha256: str, source: Path) -> Path:
    """Move the verified download ``source`` into the pool (or drop it if already there)."""
    final = layout.pool_file(sha256)
    if final.exists():
        source.unlink(missing_ok=True)
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(source, 0o644)
    _fsync(source)
    try:
        os.rename(source, final)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        tmp = final.with_name(f".{final.name}.tmp")
        shutil.copyfile(source, tmp)
        _fsync(tmp)
        os.rename(tmp, final)
        source.unlink()
    fsync_dir(final.parent)
    return final


def collect_garbage(layout: Layout, referenced: set[str]) -> list[str]:
    """Remove pool files (and temporary leftovers) whose hash is not ``referenced``."""
    removed: list[str] = []
    if not layout.pool.is_dir():
        return removed
    for bucket in layout.pool.iterdir():
        if not bucket.is_dir():
            continue
        for path in bucket.iterdir():
            sha = path.name.removesuffix(".tar.zst")
            if path.name.startswith(".") or sha not in referenced:
                path.unlink(missing_ok=True)
                removed.append(sha)
    return removed


def _fsync(path: Path, flags: int = os.O_RDONLY) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in ``path`` durable."""
    _fsync(path, os.O_RDONLY | os.O_DIRECTORY)
