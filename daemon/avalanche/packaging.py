"""Writing packages (``name-version-release-buildrelease-arch.tar.zst``) and checking them.

An archive is a POSIX (pax) tar compressed with zstd, readable by ``tar --zstd -xf``: the
package's files at relative paths, the directories above them, and the manifest at
``.cairn/packages/<name>.json``. Members are sorted, owned by root and dated 0, so the same
install tree gives the same archive. Absolute symlink targets are rewritten relative to the
link, so a package unpacks into any root (a build's ``deps/``, a test's directory).

:func:`check_manifest` refuses a manifest whose paths are absolute, contain ``..`` or whose
links leave the package root; it runs on every manifest written, and :func:`check_archive`
runs it (and compares the archive with its manifest) on a package read back.
"""

from __future__ import annotations

import hashlib
import io
import posixpath
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path

import msgspec
import zstandard

from daemon.package import (
    FileEntry,
    FileType,
    InvalidName,
    Manifest,
    archive_name,
    manifest_path,
)

from .errors import PackagingError, UnsafePathError
from .split import PackagePlan
from .unpack import check_relative

_ZSTD_LEVEL = 19


@dataclass(frozen=True)
class PackageMeta:
    """What every package of one build shares."""

    source: str
    version: str
    release: int
    build_release: int
    arch: str
    #: The build environment's digest; ``None``: built on the host's system (not hermetic).
    environment: str | None = None


def check_manifest(manifest: Manifest) -> Manifest:
    """Refuse unsafe paths (absolute, ``..``, escaping links) and duplicates; return it."""
    seen: set[str] = set()
    for entry in manifest.files:
        path = check_relative(entry.path, what=f"package {manifest.name}: path")
        if path in seen:
            raise UnsafePathError(f"package {manifest.name}: path {path!r} is listed twice")
        seen.add(path)
        if entry.type is FileType.SYMLINK:
            target = entry.target or ""
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
            if not target or posixpath.isabs(target) or resolved.split("/")[0] == "..":
                raise UnsafePathError(
                    f"package {manifest.name}: symlink {path} -> {target!r} leaves the package root"
                )
    return manifest


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 16):
            digest.update(chunk)
    return digest.hexdigest()


def _relative_target(path: str, target: str) -> str:
    if not posixpath.isabs(target):
        return target
    return posixpath.relpath(target.lstrip("/") or ".", posixpath.dirname(path) or ".")


def _entries(plan: PackagePlan, root: Path) -> list[FileEntry]:
    dirs: set[str] = set()
    entries: list[FileEntry] = []
    for raw in plan.paths:
        path = raw.rstrip("/")
        parts = path.split("/")
        dirs.update("/".join(parts[:i]) for i in range(1, len(parts)))
        full = root / path
        st = full.lstat()
        mode = stat.S_IMODE(st.st_mode)
        if raw.endswith("/"):
            dirs.add(path)
        elif stat.S_ISLNK(st.st_mode):
            target = _relative_target(path, str(full.readlink()))
            entries.append(FileEntry(path=path, type=FileType.SYMLINK, mode=0o777, target=target))
        elif stat.S_ISREG(st.st_mode):
            entries.append(
                FileEntry(path=path, type=FileType.FILE, mode=mode, size=st.st_size,
                          sha256=_sha256(full))
            )  # fmt: skip
        else:
            raise PackagingError(f"{path} in the install tree is not a file, link or directory")
    for d in dirs:
        mode = stat.S_IMODE((root / d).lstat().st_mode)
        entries.append(FileEntry(path=d, type=FileType.DIR, mode=mode))
    return sorted(entries, key=lambda e: e.path)


def build_manifest(plan: PackagePlan, root: Path | None, meta: PackageMeta) -> Manifest:
    """The manifest of ``plan`` with every file's path, mode and sha256."""
    files = _entries(plan, root) if root is not None and plan.paths else []
    return check_manifest(
        Manifest(
            name=plan.name,
            version=meta.version,
            release=meta.release,
            build_release=meta.build_release,
            arch=meta.arch,
            source=meta.source,
            summary=plan.summary,
            depends=list(plan.depends),
            provides=list(plan.provides),
            files=files,
            environment=meta.environment,
        )
    )


def _info(name: str, kind: bytes, mode: int, size: int = 0, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.linkname = kind, mode, size, link
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = 0
    return info


def write_package(
    plan: PackagePlan, root: Path | None, meta: PackageMeta, out_dir: Path
) -> tuple[Manifest, Path]:
    """Write ``plan`` as an archive in ``out_dir``; return its manifest and path.

    The package's name and version become the file's name: they are checked again here
    (whoever made the plan), and the archive must land directly in ``out_dir``."""
    try:
        filename = archive_name(plan.name, meta.version, meta.release, meta.build_release,
                                meta.arch)  # fmt: skip
    except InvalidName as exc:
        raise UnsafePathError(f"cannot write package {plan.name!r}: {exc}") from exc
    manifest = build_manifest(plan, root, meta)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / filename
    if target.parent != out_dir:
        raise UnsafePathError(f"package file {filename!r} would not be in {out_dir}")
    body = msgspec.json.format(msgspec.json.encode(manifest), indent=2) + b"\n"
    with target.open("wb") as raw:
        # Tuning the level's parameters to the expected size keeps level 19 cheap for the
        # many small packages (its default window costs ~100 ms to set up per archive).
        estimate = sum(e.size + 1024 for e in manifest.files) + len(body) + 4096
        params = zstandard.ZstdCompressionParameters.from_level(_ZSTD_LEVEL, source_size=estimate)
        compressor = zstandard.ZstdCompressor(compression_params=params)
        writer = compressor.stream_writer(raw, closefd=False)
        with writer, tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for entry in manifest.files:
                _add(tar, entry, root)
            for d in (".cairn", ".cairn/packages"):
                tar.addfile(_info(d, tarfile.DIRTYPE, 0o755))
            tar.addfile(
                _info(manifest_path(plan.name), tarfile.REGTYPE, 0o644, len(body)),
                io.BytesIO(body),
            )
    return manifest, target


def _add(tar: tarfile.TarFile, entry: FileEntry, root: Path | None) -> None:
    if entry.type is FileType.DIR:
        tar.addfile(_info(entry.path, tarfile.DIRTYPE, entry.mode))
    elif entry.type is FileType.SYMLINK:
        tar.addfile(_info(entry.path, tarfile.SYMTYPE, 0o777, link=entry.target or ""))
    else:
        assert root is not None
        with (root / entry.path).open("rb") as handle:
            tar.addfile(_info(entry.path, tarfile.REGTYPE, entry.mode, entry.size), handle)


def check_archive(path: Path) -> Manifest:
    """Read a package back: safe member paths, one manifest, files matching it."""
    manifests: list[Manifest] = []
    members: dict[str, tuple[FileType, str | None]] = {}
    try:
        with path.open("rb") as raw:
            reader = zstandard.ZstdDecompressor().stream_reader(raw)
            with tarfile.open(fileobj=reader, mode="r|") as tar:
                for member in tar:
                    _read_member(tar, member, manifests, members)
    except (tarfile.TarError, zstandard.ZstdError, msgspec.ValidationError) as exc:
        raise PackagingError(f"{path.name} is not a valid package: {exc}") from exc
    if len(manifests) != 1:
        raise PackagingError(f"{path.name} holds {len(manifests)} manifests, expected one")
    manifest = check_manifest(manifests[0])
    listed = {e.path: (e.type, e.sha256 if e.type is FileType.FILE else e.target)
              for e in manifest.files}  # fmt: skip
    if listed != members:
        differ = sorted(set(listed.items()) ^ set(members.items()))[:3]
        raise PackagingError(f"{path.name}: archive and manifest differ, e.g. {differ}")
    return manifest


def _read_member(
    tar: tarfile.TarFile,
    member: tarfile.TarInfo,
    manifests: list[Manifest],
    members: dict[str, tuple[FileType, str | None]],
) -> None:
    name = check_relative(member.name.rstrip("/"), what="archive member")
    if name in (".cairn", ".cairn/packages"):
        return
    if name.startswith(".cairn/packages/"):
        data = tar.extractfile(member)
        manifests.append(msgspec.json.decode(data.read() if data else b"", type=Manifest))
    elif member.isdir():
        members[name] = (FileType.DIR, None)
    elif member.issym():
        members[name] = (FileType.SYMLINK, member.linkname)
    elif member.isreg():
        data = tar.extractfile(member)
        members[name] = (FileType.FILE, hashlib.sha256(data.read() if data else b"").hexdigest())
    else:
        raise UnsafePathError(f"archive member {name} is neither file, directory nor symlink")
