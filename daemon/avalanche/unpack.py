"""Safe unpacking of source archives and packages.

Every archive is untrusted: members with absolute paths, ``..`` components, links that point
out of the destination, device files and setuid bits are refused or stripped by tarfile's
``data`` filter; zip members are checked the same way by hand. zstd is streamed through the
``zstandard`` module because Python 3.11's tarfile does not know it.
"""

from __future__ import annotations

import posixpath
import shutil
import tarfile
import zipfile
from pathlib import Path

import zstandard

from .errors import UnsafePathError

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".tbz2", ".tar.zst")
ARCHIVE_SUFFIXES = (*TAR_SUFFIXES, ".zip")


def is_archive(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def unpack(archive: Path, dest: Path, *, name: str | None = None) -> None:
    """Unpack ``archive`` (type from ``name`` or its file name) into ``dest`` safely."""
    kind = (name or archive.name).lower()
    dest.mkdir(parents=True, exist_ok=True)
    try:
        if kind.endswith(".zip"):
            _unzip(archive, dest)
        elif kind.endswith(".tar.zst"):
            with archive.open("rb") as raw:
                reader = zstandard.ZstdDecompressor().stream_reader(raw)
                with tarfile.open(fileobj=reader, mode="r|") as tar:
                    tar.extractall(dest, filter=_strict_filter)  # noqa: S202  (filtered: see _strict_filter)
        else:
            with tarfile.open(archive, mode="r:*") as tar:
                tar.extractall(dest, filter=_strict_filter)  # noqa: S202  (filtered: see _strict_filter)
    except tarfile.FilterError as exc:
        raise UnsafePathError(f"{name or archive.name}: refused unsafe member: {exc}") from exc
    except (tarfile.TarError, zipfile.BadZipFile, zstandard.ZstdError, EOFError) as exc:
        raise UnsafePathError(f"{name or archive.name} is not a valid archive: {exc}") from exc


def _strict_filter(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
    """tarfile's ``data`` filter, and absolute names refused rather than made relative."""
    name = member.name.rstrip("/")
    if name not in ("", "."):
        check_relative(name.removeprefix("./"), what="archive member")
    return tarfile.data_filter(member, dest)


def _unzip(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            check_relative(info.filename.rstrip("/"), what=f"zip member of {archive.name}")
        for info in zf.infolist():
            target = dest / info.filename
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, target.open("wb") as out:
                shutil.copyfileobj(src, out)
            mode = (info.external_attr >> 16) & 0o777
            target.chmod(mode or 0o644)


def check_relative(path: str, *, what: str = "path") -> str:
    """Refuse absolute paths, ``..``/``.``/empty components, NUL and backslashes."""
    if not path or "\0" in path or "\\" in path:
        raise UnsafePathError(f"{what} {path!r} is empty or has a NUL or backslash")
    if posixpath.isabs(path):
        raise UnsafePathError(f"{what} {path!r} is absolute; paths must be relative")
    if any(part in ("", ".", "..") for part in path.split("/")):
        raise UnsafePathError(f"{what} {path!r} has an empty, '.' or '..' component")
    return path


def strip_single_top(dest: Path) -> Path:
    """If ``dest`` holds exactly one directory, return it (the source tree's root)."""
    entries = list(dest.iterdir())
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
        return entries[0]
    return dest
