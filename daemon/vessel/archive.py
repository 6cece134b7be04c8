"""Inspect a package archive without extracting it, and check its manifest against the build.

Why streaming and never ``extractall``: vessel trusts no builder. The archive is read once,
as a stream through zstd and ``tarfile`` in ``r|`` mode, and every member is judged before
the next is read: only regular files, directories and symlinks; relative paths without
``..``; the total size bounded (a decompression bomb stops at the limit, not at the end of
the disk); symlinks resolved inside a model of the package, following other symlinks of the
package, so no chain of links can lead outside it. Nothing is written to disk.

Functions here are synchronous and CPU-bound: call them through ``asyncio.to_thread``.
"""

from __future__ import annotations

import hashlib
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import msgspec
import zstandard

from daemon.package import MANIFEST_DIR, FileType, Manifest, archive_name, manifest_path
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


@dataclass(frozen=True)
class Inspected:
    """What an archive holds, once it passed every check."""

    manifest: Manifest
    members: tuple[Member, ...]
    unpacked_bytes: int


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


def inspect_archive(path: Path, label: str, *, max_unpacked: int, max_members: int) -> Inspected:
    """Read the whole archive once and return its members and manifest, or refuse it."""
    members: dict[str, Member] = {}
    manifests: dict[str, bytes] = {}
    total = 0
    # Tar headers and padding add a little on top of the file sizes; allow for them.
    slack = 1024 * (max_members + 16)
    with path.open("rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as plain:
        bounded = _Bounded(plain, max_unpacked + slack, label)
        try:
            with tarfile.open(fileobj=bounded, mode="r|") as tar:  # type: ignore[call-overload]
                for info in tar:
                    if len(members) >= max_members:
                        raise ImportRefused(f"has more than {max_members} members",
                                            artefact=label)
                    member, data = _read_member(tar, info, label)
                    if member is None:
                        continue
                    seen = members.get(member.path)
                    if seen is not None and seen.type is member.type is FileType.DIR:
                        continue  # a directory listed twice holds nothing to hide
                    if seen is not None:
                        raise ImportRefused(f"lists {member.path!r} twice", artefact=label)
                    members[member.path] = member
                    total += member.size
                    if total > max_unpacked:
                        raise ImportRefused(
                            f"holds more than the limit of {max_unpacked} bytes of files",
                            artefact=label)
                    if data is not None:
                        manifests[member.path] = data
        except (tarfile.TarError, zstandard.ZstdError, EOFError, OSError) as exc:
            raise ImportRefused(f"is not a valid zstd-compressed tar: {exc}",
                                artefact=label) from None
    _check_symlinks(members, label)
    manifest = _decode_manifest(manifests, label)
    return Inspected(manifest, tuple(members.values()), total)


def _read_member(
    tar: tarfile.TarFile, info: tarfile.TarInfo, label: str
) -> tuple[Member | None, bytes | None]:
    """Judge one member; hash regular files; return the manifest's bytes when it is one."""
    path = _safe_path(info.name, label)
    if path is None:
        if not info.isdir():
            raise ImportRefused(f"member {info.name!r} names the package root", artefact=label)
        return None, None
    if info.isdir():
        return Member(path, FileType.DIR, 0, None, None), None
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
    is_manifest = path.startswith(MANIFEST_DIR + "/")
    if is_manifest and info.size > MAX_MANIFEST_BYTES:
        raise ImportRefused(f"manifest {path!r} is larger than {MAX_MANIFEST_BYTES} bytes",
                            artefact=label)
    digest = hashlib.sha256()
    kept = bytearray()
    stream = tar.extractfile(info)
    if stream is None:  # pragma: no cover - isreg() members always have a stream
        raise ImportRefused(f"member {path!r} cannot be read", artefact=label)
    while chunk := stream.read(_CHUNK):
        digest.update(chunk)
        if is_manifest:
            kept += chunk
    member = Member(path, FileType.FILE, info.size, digest.hexdigest(), None)
    return member, (bytes(kept) if is_manifest else None)


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
        if entry.type is FileType.FILE and (
            member.size != entry.size or (entry.sha256 and entry.sha256 != member.sha256)
        ):
            raise ImportRefused(f"{entry.path!r} differs from its manifest entry (size or "
                                "sha256)", artefact=label)
        if entry.type is FileType.SYMLINK and member.target != entry.target:
            raise ImportRefused(f"symlink {entry.path!r} points to {member.target!r} but the "
                                f"manifest says {entry.target!r}", artefact=label)
    for member in inspected.members:
        if member.type is not FileType.DIR and member.path not in listed and not \
                member.path.startswith(MANIFEST_DIR + "/"):
            raise ImportRefused(f"{member.path!r} is in the archive but not in its manifest",
                                artefact=label)
