"""Inspect a package archive without extracting it, and check its manifest against the build.

Why streaming and never ``extractall``: vessel trusts no builder. The archive is read once,
as a stream through zstd and ``tarfile`` in ``r|`` mode, and every member is judged before
the next is read: only regular files, directories and symlinks; relative paths without
``..``; the total size, each file's size and the number of members bounded (a decompression
bomb stops at the limit, not at the end of the disk); no setuid, setgid or sticky file, no
world-writable file, no world-writable directory without the sticky bit (an installed
package must not hand out privileges or let any user replace its files); symlinks resolved
inside a model of the package, following other symlinks of the package, so no chain of
links can lead outside it. Nothing is written to disk.

Functions here are synchronous and CPU-bound: call them through ``asyncio.to_thread``.
"""

from __future__ import annotations

import hashlib
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import msgspec
import zstandard

from daemon.elf import MAGIC as ELF_MAGIC
from daemon.package import MANIFEST_DIR, FileType, Manifest, archive_name, manifest_path
from daemon.vessel.config import ArchiveLimits
from daemon.vessel.errors import ImportRefused
from daemon.vessel.symlinks import SymlinkModel, SymlinkRefused
from events.payloads import Artefact, BuildDone

#: The manifest is metadata; anything larger is not a manifest.
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Member:
    path: str
    type: FileType
    size: int
    sha256: str | None
    target: str | None
    #: Permission bits, with setuid, setgid and sticky (``0o7777``).
    mode: int = 0
    #: A regular file that starts like an ELF object (a candidate for a ``soname()``).
    elf: bool = False


@dataclass(frozen=True)
class Inspected:
    """What an archive holds, once it passed every check."""

    manifest: Manifest
    members: tuple[Member, ...]
    unpacked_bytes: int
    #: The archive on disk (vessel's own temporary copy), for a second read of some members.
    path: Path


class _Bounded:
    """A reader that refuses to yield more than ``limit`` decompressed bytes."""

    def __init__(self, raw: IO[bytes], limit: int, label: str) -> None:
        self._raw, self._limit, self._label, self.count = raw, limit, label, 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size if size >= 0 else _CHUNK)
        self.count += len(data)
        if self.count > self._limit:
            raise ImportRefused(
                f"decompresses to more than the limit of {self._limit} bytes",
                artefact=self._label,
            )
        return data


def inspect_archive(path: Path, label: str, limits: ArchiveLimits) -> Inspected:
    """Read the whole archive once and return its members and manifest, or refuse it."""
    members: dict[str, Member] = {}
    manifests: dict[str, bytes] = {}
    total = 0
    # Tar headers and padding add a little on top of the file sizes; allow for them.
    slack = 1024 * (limits.members + 16)
    with path.open("rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as plain:
        bounded = _Bounded(plain, limits.unpacked_bytes + slack, label)
        try:
            with tarfile.open(fileobj=bounded, mode="r|") as tar:  # type: ignore[call-overload]
                for info in tar:
                    if len(members) >= limits.members:
                        raise ImportRefused(f"holds more than the limit of {limits.members} "
                                            "members (max_members)", artefact=label)
                    if info.isreg() and total + info.size > limits.unpacked_bytes:
                        raise ImportRefused(
                            f"holds more than the limit of {limits.unpacked_bytes} bytes of "
                            f"files (max_unpacked_bytes), reached at {info.name!r}",
                            artefact=label)
                    member, data = _read_member(tar, info, label, limits)
                    if member is None:
                        continue
                    seen = members.get(member.path)
                    if seen is not None and seen.type is member.type is FileType.DIR:
                        continue  # a directory listed twice holds nothing to hide
                    if seen is not None:
                        raise ImportRefused(f"lists {member.path!r} twice", artefact=label)
                    members[member.path] = member
                    total += member.size
                    if data is not None:
                        manifests[member.path] = data
        except (tarfile.TarError, zstandard.ZstdError, EOFError, OSError) as exc:
            raise ImportRefused(f"is not a valid zstd-compressed tar: {exc}",
                                artefact=label) from None
    _check_symlinks(members, label)
    manifest = _decode_manifest(manifests, label)
    return Inspected(manifest, tuple(members.values()), total, path)


def _read_member(
    tar: tarfile.TarFile, info: tarfile.TarInfo, label: str, limits: ArchiveLimits
) -> tuple[Member | None, bytes | None]:
    """Judge one member; hash regular files; return the manifest's bytes when it is one."""
    path = _safe_path(info.name, label)
    if path is None:
        if not info.isdir():
            raise ImportRefused(f"member {info.name!r} names the package root", artefact=label)
        return None, None
    mode = stat.S_IMODE(info.mode)
    if info.isdir():
        check_mode(path, FileType.DIR, mode, label)
        return Member(path, FileType.DIR, 0, None, None, mode), None
    if info.issym():
        if not info.linkname or info.linkname.startswith("/"):
            raise ImportRefused(
                f"symlink {path!r} points to {info.linkname!r}: symlinks must be relative and "
                "stay inside the package", artefact=label)
        return Member(path, FileType.SYMLINK, 0, None, info.linkname), None
    if not info.isreg():
        kind = {tarfile.LNKTYPE: "a hard link", tarfile.CHRTYPE: "a character device",
                tarfile.BLKTYPE: "a block device", tarfile.FIFOTYPE: "a fifo"}.get(
                    info.type, f"of tar type {info.type!r}")
        raise ImportRefused(f"member {path!r} is {kind}; only regular files, directories and "
                            "symlinks are allowed", artefact=label)
    check_mode(path, FileType.FILE, mode, label)
    if info.size > limits.file_bytes:
        raise ImportRefused(f"file {path!r} is {info.size} bytes, over the limit of "
                            f"{limits.file_bytes} bytes per file (max_file_bytes)",
                            artefact=label)
    is_manifest = path.startswith(MANIFEST_DIR + "/")
    if is_manifest and info.size > MAX_MANIFEST_BYTES:
        raise ImportRefused(f"manifest {path!r} is larger than {MAX_MANIFEST_BYTES} bytes",
                            artefact=label)
    digest = hashlib.sha256()
    kept = bytearray()
    stream = tar.extractfile(info)
    if stream is None:  # pragma: no cover - isreg() members always have a stream
        raise ImportRefused(f"member {path!r} cannot be read", artefact=label)
    elf: bool | None = None
    while chunk := stream.read(_CHUNK):
        if elf is None:
            elf = chunk.startswith(ELF_MAGIC)
        digest.update(chunk)
        if is_manifest:
            kept += chunk
    member = Member(path, FileType.FILE, info.size, digest.hexdigest(), None, mode, bool(elf))
    return member, (bytes(kept) if is_manifest else None)


def check_mode(path: str, kind: FileType, mode: int, label: str) -> None:
    """Refuse a mode that grants privileges or lets any user change what the package installs.

    Files: no setuid, setgid or sticky bit, not world-writable. Directories: no setuid or
    setgid bit; world-writable only with the sticky bit (``1777``, as ``/tmp``), so that
    nobody can remove or replace another user's files in it.
    """
    bad = []
    if mode & stat.S_ISUID:
        bad.append("setuid")
    if mode & stat.S_ISGID:
        bad.append("setgid")
    if kind is FileType.FILE and mode & stat.S_ISVTX:
        bad.append("sticky")
    if mode & stat.S_IWOTH and (kind is FileType.FILE or not mode & stat.S_ISVTX):
        bad.append("world-writable" if kind is FileType.FILE
                   else "world-writable without the sticky bit")
    if bad:
        what = "file" if kind is FileType.FILE else "directory"
        raise ImportRefused(f"{what} {path!r} has mode {mode:04o} ({', '.join(bad)}): packages "
                            "may not install setuid, setgid, sticky or world-writable files, "
                            "nor world-writable directories without the sticky bit",
                            artefact=label)


def _safe_path(name: str, label: str) -> str | None:
    """The member's relative path, ``None`` for the root itself, or a refusal."""
    if name.startswith("/"):
        raise ImportRefused(f"member {name!r} has an absolute path", artefact=label)
    if "\x00" in name or "\\" in name:
        raise ImportRefused(f"member {name!r} has a NUL or backslash in its path",
                            artefact=label)
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ImportRefused(f"member {name!r} has a '..' component", artefact=label)
    return "/".join(parts) or None


def _check_symlinks(members: dict[str, Member], label: str) -> None:
    """Resolve every symlink inside a model of the package; refuse any that leaves it.

    A target that the package does not hold (a library from another package) is fine as long
    as the path to it stays inside the root; links are followed as the kernel would.
    """
    links = {m.path: m.target for m in members.values()
             if m.type is FileType.SYMLINK and m.target is not None}
    try:
        SymlinkModel(links).check(list(members))
    except SymlinkRefused as exc:
        raise ImportRefused(str(exc), artefact=label) from None


def _decode_manifest(manifests: dict[str, bytes], label: str) -> Manifest:
    """Exactly one manifest, at the path its own name gives."""
    if len(manifests) != 1:
        found = ", ".join(sorted(manifests)) or "none"
        raise ImportRefused(f"must hold exactly one manifest under {MANIFEST_DIR}/ (found: "
                            f"{found})", artefact=label)
    ((path, data),) = manifests.items()
    try:
        manifest = msgspec.json.decode(data, type=Manifest)
    except msgspec.ValidationError as exc:
        raise ImportRefused(f"manifest is invalid: {exc}", artefact=label) from None
    except msgspec.DecodeError as exc:
        raise ImportRefused(f"manifest is not JSON: {exc}", artefact=label) from None
    if path != manifest_path(manifest.name):
        raise ImportRefused(f"manifest of {manifest.name!r} must be at "
                            f"{manifest_path(manifest.name)!r}, not {path!r}", artefact=label)
    return manifest


def check_against_build(inspected: Inspected, artefact: Artefact, build: BuildDone) -> None:
    """The manifest must describe this build and exactly the files the archive holds."""
    m, label = inspected.manifest, artefact.filename
    expected = {
        "name": artefact.name, "version": build.version, "release": build.release,
        "build_release": build.build_release, "arch": build.arch, "source": build.source,
        # What built it is part of what the build says it is: a package claiming another
        # environment (or none) than its build-done would make the index lie about provenance.
        "environment": build.environment,
    }
    for field, want in expected.items():
        got = getattr(m, field)
        if got != want:
            raise ImportRefused(f"manifest {field} is {got!r} but the build says {want!r}",
                                artefact=label)
    try:
        want_name = archive_name(m.name, m.version, m.release, m.build_release, m.arch)
    except ValueError as exc:
        raise ImportRefused(str(exc), artefact=label) from None
    if artefact.filename != want_name:
        raise ImportRefused(f"file name should be {want_name!r} for its manifest",
                            artefact=label)
    _check_file_list(inspected, label)


def _check_file_list(inspected: Inspected, label: str) -> None:
    held = {m.path: m for m in inspected.members}
    listed = set()
    for entry in inspected.manifest.files:
        path = _safe_path(entry.path, label)
        member = held.get(path or "")
        if member is None:
            raise ImportRefused(f"manifest lists {entry.path!r} but the archive lacks it",
                                artefact=label)
        listed.add(member.path)
        if member.type is not entry.type:
            raise ImportRefused(f"{entry.path!r} is a {member.type} in the archive but a "
                                f"{entry.type} in the manifest", artefact=label)
        if entry.type is FileType.FILE and not entry.sha256:
            raise ImportRefused(f"manifest entry for file {entry.path!r} has no sha256: every "
                                "file's hash is required", artefact=label)
        if entry.type is FileType.FILE and (
            member.size != entry.size or entry.sha256 != member.sha256
        ):
            raise ImportRefused(f"{entry.path!r} differs from its manifest entry (size or "
                                "sha256)", artefact=label)
        if entry.type is not FileType.SYMLINK and entry.mode != member.mode:
            raise ImportRefused(f"{entry.path!r} has mode {member.mode:04o} in the archive but "
                                f"{entry.mode:04o} in the manifest", artefact=label)
        if entry.type is FileType.SYMLINK and member.target != entry.target:
            raise ImportRefused(f"symlink {entry.path!r} points to {member.target!r} but the "
                                f"manifest says {entry.target!r}", artefact=label)
    for member in inspected.members:
        if member.type is not FileType.DIR and member.path not in listed and not \
                member.path.startswith(MANIFEST_DIR + "/"):
            raise ImportRefused(f"{member.path!r} is in the archive but not in its manifest",
                                artefact=label)
