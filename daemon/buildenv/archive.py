"""Packing a tree into an environment archive reproducibly, and unpacking one safely.

The archive is a POSIX (pax) tar compressed with zstd (readable by ``tar --zstd -xf``):
``.cairn/environment.json`` first, then every directory, regular file and symlink of the tree
in sorted order. Each member is owned by 0:0 with no user or group name, dated
``source_date_epoch``, and keeps only its permission bits (no setuid, setgid or sticky bit: a
build root needs none). Hard links are stored as separate files, device nodes, fifos and
sockets are left out, and so is everything under ``dev/`` (the sandbox mounts its own
``/dev``). zstd runs single-threaded at a fixed level, so the same tree gives the same bytes,
and the archive's sha256 names it.

Unpacking trusts nothing: member names must be relative without ``.``/``..`` components, no
member may sit below a symlink of the archive (so an absolute link cannot carry a write out of
the destination), hard links, devices and duplicates are refused, and files are created with
``O_EXCL | O_NOFOLLOW``. The unpacked tree is made read-only (no write bits), as a cache of
immutable roots should be. Absolute symlink targets are kept: they are meant to resolve
inside the root once it is mounted as ``/``.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import IO

import zstandard

from .errors import BuildEnvError
from .manifest import MANIFEST_MEMBER, EnvManifest, decode_manifest, encode

ZSTD_LEVEL = 9
_CHUNK = 1 << 20
#: Directories whose contents are never packed (the sandbox provides them).
_EMPTY_DIRS = ("dev",)


class Kind(StrEnum):
    DIR = "dir"
    FILE = "file"
    SYMLINK = "symlink"


@dataclass(frozen=True)
class Entry:
    path: str
    kind: Kind
    mode: int
    size: int = 0
    target: str = ""


def scan(root: Path) -> list[Entry]:
    """Every directory, file and symlink under ``root`` that an archive holds, sorted."""
    entries: list[Entry] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = os.path.relpath(dirpath, root)
        prefix = "" if rel == "." else rel + "/"
        if rel in _EMPTY_DIRS:
            dirnames.clear()
            continue
        for name in sorted([*dirnames, *filenames]):
            path = prefix + name
            if path == MANIFEST_MEMBER:
                continue
            st = os.lstat(os.path.join(dirpath, name))
            mode = stat.S_IMODE(st.st_mode) & 0o777
            if stat.S_ISLNK(st.st_mode):
                target = os.readlink(os.path.join(dirpath, name))
                entries.append(Entry(path, Kind.SYMLINK, 0o777, target=target))
                if name in dirnames:
                    dirnames.remove(name)  # os.walk does not follow it; keep it a link
            elif stat.S_ISDIR(st.st_mode):
                entries.append(Entry(path, Kind.DIR, mode))
            elif stat.S_ISREG(st.st_mode):
                entries.append(Entry(path, Kind.FILE, mode, st.st_size))
    return sorted(entries, key=lambda e: e.path)


def _info(entry: Entry, epoch: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(entry.path)
    info.type = {Kind.DIR: tarfile.DIRTYPE, Kind.FILE: tarfile.REGTYPE,
                 Kind.SYMLINK: tarfile.SYMTYPE}[entry.kind]
    info.mode, info.size, info.linkname = entry.mode, entry.size, entry.target
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = epoch
    return info


def pack(root: Path, entries: list[Entry], manifest: EnvManifest, out: Path, *,
         level: int = ZSTD_LEVEL, progress: Callable[[int, int], None] | None = None) -> str:
    """Write the archive of ``root`` to ``out``; return its sha256 (hex)."""
    body = encode(manifest)
    epoch = manifest.source_date_epoch
    total = sum(e.size for e in entries)
    done = 0
    with out.open("wb") as raw:
        compressor = zstandard.ZstdCompressor(level=level, threads=0)
        writer = compressor.stream_writer(raw, closefd=False)
        with writer, tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            tar.addfile(_info(Entry(".cairn", Kind.DIR, 0o755), epoch))
            tar.addfile(_info(Entry(MANIFEST_MEMBER, Kind.FILE, 0o644, len(body)), epoch),
                        io.BytesIO(body))
            for entry in entries:
                if entry.path == ".cairn":
                    continue
                if entry.kind is not Kind.FILE:
                    tar.addfile(_info(entry, epoch))
                    continue
                with (root / entry.path).open("rb") as handle:
                    if os.fstat(handle.fileno()).st_size != entry.size:
                        raise BuildEnvError(f"{entry.path} changed while it was being packed")
                    tar.addfile(_info(entry, epoch), handle)
                done += entry.size
                if progress is not None:
                    progress(done, total)
    return sha256_file(out)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def iter_members(archive: Path) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo]]:
    try:
        with archive.open("rb") as raw:
            reader = zstandard.ZstdDecompressor().stream_reader(raw)
            with tarfile.open(fileobj=reader, mode="r|") as tar:
                for member in tar:
                    yield tar, member
    except (tarfile.TarError, zstandard.ZstdError, EOFError) as exc:
        raise BuildEnvError(f"{archive.name} is not a valid environment archive: {exc}"
                            ) from exc


def read_manifest(archive: Path) -> EnvManifest:
    """The manifest of an archive (its first members), without unpacking the rest."""
    for tar, member in iter_members(archive):
        if member.name == MANIFEST_MEMBER and member.isreg():
            data = tar.extractfile(member)
            return decode_manifest(data.read() if data else b"",
                                   what=f"{archive.name}:{MANIFEST_MEMBER}")
        if member.name.rstrip("/") != ".cairn":
            break
    raise BuildEnvError(f"{archive.name} does not start with {MANIFEST_MEMBER}: it is not a "
                        "cairn build environment")


def check_member_name(name: str) -> str:
    path = name.rstrip("/")
    if not path or "\0" in path or "\\" in path or path.startswith("/"):
        raise BuildEnvError(f"archive member {name!r} is empty, absolute or has a NUL/backslash")
    if any(part in ("", ".", "..") for part in path.split("/")):
        raise BuildEnvError(f"archive member {name!r} has an empty, '.' or '..' component")
    return path


def unpack(archive: Path, dest: Path) -> EnvManifest:
    """Unpack ``archive`` into ``dest`` (created; must not exist) read-only; return its
    manifest. See the module docstring for what is refused."""
    dest.mkdir(parents=True)
    links: set[str] = set()
    dirs: dict[str, int] = {}
    manifest: EnvManifest | None = None
    for tar, member in iter_members(archive):
        path = check_member_name(member.name)
        parts = path.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in links:
                raise BuildEnvError(f"{archive.name}: member {path} lies below a symlink")
        target = dest / path
        if len(parts) > 1:
            target.parent.mkdir(parents=True, exist_ok=True)
        try:
            if member.isdir():
                if not target.is_dir() or target.is_symlink():
                    target.mkdir()
                dirs[path] = member.mode & 0o777
            elif member.issym():
                os.symlink(member.linkname, target)
                links.add(path)
            elif member.isreg():
                data = tar.extractfile(member)
                if path == MANIFEST_MEMBER:
                    content = data.read() if data is not None else b""
                    manifest = decode_manifest(content, what=f"{archive.name}:{path}")
                    data = io.BytesIO(content)
                _write_file(target, data, member.mode & 0o555)
            else:
                raise BuildEnvError(f"{archive.name}: member {path} is neither a file, a "
                                    "directory nor a symlink")
        except FileExistsError:
            raise BuildEnvError(f"{archive.name}: member {path} appears twice") from None
    for path in sorted(dirs, reverse=True):
        os.chmod(dest / path, dirs[path] & 0o555)
    if manifest is None:
        raise BuildEnvError(f"{archive.name} has no {MANIFEST_MEMBER}: not an environment")
    return manifest


def _write_file(target: Path, data: IO[bytes] | None, mode: int) -> None:
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        if data is not None:
            while chunk := data.read(_CHUNK):
                out.write(chunk)
        os.fchmod(out.fileno(), mode)


def make_writable(root: Path) -> None:
    """Give the owner write access to every directory again (so the tree can be removed)."""
    for dirpath, dirnames, _files in os.walk(root):
        for name in dirnames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.chmod(path, stat.S_IMODE(os.lstat(path).st_mode) | 0o700)
    if root.is_dir():
        os.chmod(root, 0o700)
