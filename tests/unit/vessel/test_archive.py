"""Archive inspection refuses every hostile shape, with a reason naming the path."""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

import pytest
import zstandard

from daemon.vessel.archive import check_against_build, inspect_archive
from daemon.vessel.config import ArchiveLimits
from daemon.vessel.errors import ImportRefused
from events.payloads import Artefact
from tests.unit.vessel.builders import Pkg, add_member, archive_bytes, build_done

HELLO = {"usr/bin/hello": b"#!/bin/sh\necho hi\n", "usr/share/doc/hello/README": b"read me"}


def _write(tmp_path: Path, pkg: Pkg, data: bytes | None = None) -> tuple[Path, Artefact]:
    blob = archive_bytes(pkg) if data is None else data
    path = tmp_path / pkg.filename
    path.write_bytes(blob)
    artefact = Artefact(name=pkg.name, filename=pkg.filename, url="http://x/",
                        sha256=hashlib.sha256(blob).hexdigest(), size=len(blob))
    return path, artefact


def limits(unpacked: int = 10**8, members: int = 1000, file: int = 10**8) -> ArchiveLimits:
    return ArchiveLimits(unpacked_bytes=unpacked, members=members, file_bytes=file)


def _inspect(tmp_path: Path, pkg: Pkg, *, limit: int = 10**8) -> None:
    path, artefact = _write(tmp_path, pkg)
    inspected = inspect_archive(path, pkg.filename, limits(unpacked=limit))
    check_against_build(inspected, artefact, build_done([artefact], source=pkg.source or
                                                        pkg.name))


def test_honest_package_passes(tmp_path: Path) -> None:
    pkg = Pkg(name="hello", files=HELLO, symlinks={"usr/bin/hi": "hello",
                                                   "usr/lib/x": "../share/doc"})
    path, artefact = _write(tmp_path, pkg)
    inspected = inspect_archive(path, pkg.filename, limits(10**6, 100))
    check_against_build(inspected, artefact, build_done([artefact], source="hello"))
    assert inspected.manifest.name == "hello"
    manifest_size = sum(m.size for m in inspected.members if m.path.startswith(".cairn/"))
    assert manifest_size > 0
    assert inspected.unpacked_bytes == sum(len(d) for d in HELLO.values()) + manifest_size
    assert {m.path for m in inspected.members} >= {"usr/bin/hi", "usr/lib/x", *HELLO}


@pytest.mark.parametrize(
    ("tweak", "symlinks", "reason"),
    [
        (add_member("../evil"), {}, r"'\.\./evil' has a '\.\.' component"),
        (add_member("usr/../../evil"), {}, r"'\.\.' component"),
        (add_member("/etc/passwd"), {}, "'/etc/passwd' has an absolute path"),
        (None, {"usr/etc": "/etc"}, r"symlink 'usr/etc' points to '/etc'"),
        (None, {"usr/up": "../../etc"}, "points outside the package"),
        (add_member("dev/sda", tarfile.BLKTYPE), {}, "'dev/sda' is a block device"),
        (add_member("dev/null", tarfile.CHRTYPE), {}, "character device"),
        (add_member("usr/fifo", tarfile.FIFOTYPE), {}, "is a fifo"),
        (add_member("usr/hard", tarfile.LNKTYPE, linkname="usr/bin/hello"), {}, "hard link"),
        (add_member("usr/bin/hello"), {}, "lists 'usr/bin/hello' twice"),
        (add_member("usr/extra"), {}, "'usr/extra' is in the archive but not in its manifest"),
    ],
)
def test_hostile_members_are_refused(tmp_path: Path, tweak: object, symlinks: dict[str, str],
                                     reason: str) -> None:
    pkg = Pkg(name="hello", files=dict(HELLO), symlinks=symlinks, tweak=tweak)  # type: ignore[arg-type]
    with pytest.raises(ImportRefused, match=reason) as caught:
        _inspect(tmp_path, pkg)
    assert pkg.filename in str(caught.value)
    assert not caught.value.retryable


def test_symlink_chain_escape_is_refused(tmp_path: Path) -> None:
    # Each link looks harmless on its own; followed as the kernel does, the second escapes.
    pkg = Pkg(name="hello", files=dict(HELLO),
              symlinks={"a/b/c/top": "../../..", "a/b/c/out": "top/.."})
    with pytest.raises(ImportRefused, match=r"'a/b/c/out' -> 'top/\.\.' points outside"):
        _inspect(tmp_path, pkg)


def test_symlink_loop_is_refused(tmp_path: Path) -> None:
    pkg = Pkg(name="hello", files=dict(HELLO), symlinks={"usr/a": "b", "usr/b": "a/x"})
    with pytest.raises(ImportRefused, match="is part of a symlink loop"):
        _inspect(tmp_path, pkg)


def test_unpacked_size_limit(tmp_path: Path) -> None:
    pkg = Pkg(name="big", files={"usr/zeros": bytes(200_000)})
    with pytest.raises(ImportRefused, match=r"limit of 100000 bytes of files \(max_unpacked_"
                                            r"bytes\), reached at 'usr/zeros'"):
        _inspect(tmp_path, pkg, limit=100_000)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"version": "2.0"}, "manifest version is '2.0' but the build says '1.0'"),
        ({"release": 3}, "manifest release is 3"),
        ({"arch": "aarch64"}, "manifest arch"),
        ({"source": "other"}, "manifest source"),
        # The package claims a build environment its build-done does not (built on the host).
        ({"environment": "ab" * 32}, f"manifest environment is '{'ab' * 32}' but the build "
                                     "says None"),
    ],
)
def test_manifest_must_match_build(tmp_path: Path, fields: dict[str, object],
                                   reason: str) -> None:
    with pytest.raises(ImportRefused, match=reason):
        _inspect(tmp_path, Pkg(name="hello", files=dict(HELLO), manifest_fields=fields))


def test_manifest_file_list_must_match(tmp_path: Path) -> None:
    from daemon.package import FileEntry, FileType

    lying = [FileEntry(path="usr/bin/hello", type=FileType.FILE, mode=0o755, size=3,
                       sha256="0" * 64)]
    with pytest.raises(ImportRefused, match="'usr/bin/hello' differs from its manifest"):
        _inspect(tmp_path, Pkg(name="hello", files={"usr/bin/hello": b"abc"},
                               manifest_fields={"files": lying}))
    ghost = [FileEntry(path="usr/bin/ghost", type=FileType.FILE, mode=0o755, size=0)]
    with pytest.raises(ImportRefused, match="lists 'usr/bin/ghost' but the archive lacks it"):
        _inspect(tmp_path, Pkg(name="hello", files={}, manifest_fields={"files": ghost}))


def test_second_manifest_is_refused(tmp_path: Path) -> None:
    pkg = Pkg(name="hello", files=dict(HELLO),
              tweak=add_member(".cairn/packages/glibc.json", data=b"{}"))
    with pytest.raises(ImportRefused, match="exactly one manifest"):
        _inspect(tmp_path, pkg)


def test_not_an_archive(tmp_path: Path) -> None:
    pkg = Pkg(name="hello", files=dict(HELLO))
    path, _ = _write(tmp_path, pkg, b"this is not zstd at all")
    with pytest.raises(ImportRefused, match="not a valid zstd-compressed tar"):
        inspect_archive(path, pkg.filename, limits(10**6, 10))
    path.write_bytes(zstandard.ZstdCompressor().compress(b"not a tar" * 100))
    with pytest.raises(ImportRefused, match="not a valid zstd-compressed tar"):
        inspect_archive(path, pkg.filename, limits(10**6, 10))
