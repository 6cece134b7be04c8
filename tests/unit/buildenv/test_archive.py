"""Environment archives: reproducible bytes, a faithful read-only unpack, hostile archives
refused without writing outside the destination."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest
import zstandard

from daemon.buildenv import archive
from daemon.buildenv.errors import BuildEnvError
from daemon.buildenv.manifest import MANIFEST_MEMBER, encode

from .support import make_tree, pack_tree


def test_same_tree_gives_same_digest_whatever_the_mtimes(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "a")
    first, _ = pack_tree(root, tmp_path / "out1")
    os.utime(root / "usr/bin/tool", (1, 1))
    os.utime(root / "usr", (2, 2))
    second, _ = pack_tree(root, tmp_path / "out2")
    assert first.digest == second.digest
    other, _ = pack_tree(make_tree(tmp_path / "b", marker="two"), tmp_path / "out3")
    assert other.digest != first.digest


def test_archive_members_are_sorted_normalised_and_start_with_the_manifest(
        tmp_path: Path) -> None:
    record, path = pack_tree(make_tree(tmp_path / "root"), tmp_path / "out")
    members = [m for _t, m in archive.iter_members(path)]
    names = [m.name for m in members]
    assert names[:2] == [".cairn", MANIFEST_MEMBER]
    assert names[2:] == sorted(names[2:])
    assert "dev" in names and "dev/null-ish" not in names
    assert {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in members} == {
        (0, 0, "", "", 1_700_000_000)}
    tool = next(m for m in members if m.name == "usr/bin/tool")
    assert tool.mode == 0o755  # setuid dropped
    assert archive.read_manifest(path) == record.manifest


def test_unpack_is_faithful_and_read_only(tmp_path: Path) -> None:
    record, path = pack_tree(make_tree(tmp_path / "root"), tmp_path / "out")
    dest = tmp_path / "unpacked"
    assert archive.unpack(path, dest) == record.manifest
    assert (dest / "usr/bin/tool").read_text().endswith("echo one\n")
    assert os.readlink(dest / "usr/bin/cc") == "/etc/alternatives/cc"  # kept absolute
    assert os.readlink(dest / "bin") == "usr/bin"
    assert stat.S_IMODE((dest / "usr/bin/tool").stat().st_mode) == 0o555
    assert stat.S_IMODE((dest / "usr/bin").stat().st_mode) == 0o555
    assert stat.S_IMODE((dest / "root").stat().st_mode) == 0o500
    assert (dest / MANIFEST_MEMBER).is_file()
    if os.geteuid() != 0:  # root ignores permission bits
        with pytest.raises(PermissionError):
            (dest / "usr/bin/new").write_text("x")
    archive.make_writable(dest)
    (dest / "usr/bin/new").write_text("removable again")


def _hostile(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    """An archive with a valid manifest first, then ``members``."""
    record, _ = pack_tree(make_tree(path.parent / "src"), path.parent / "good")
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        body = encode(record.manifest)
        info = tarfile.TarInfo(MANIFEST_MEMBER)
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    path.write_bytes(zstandard.ZstdCompressor().compress(raw.getvalue()))
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, 0o644
    return info


@pytest.mark.parametrize(("members", "complaint"), [
    ([(_member("../escape"), b"x")], "'..'"),
    ([(_member("/etc/escape"), b"x")], "absolute"),
    ([(_member("etc", tarfile.SYMTYPE, "{outside}"), b""), (_member("etc/escape"), b"x")],
     "below a symlink"),
    ([(_member("hard", tarfile.LNKTYPE, "etc/passwd"), b"")], "neither a file"),
    ([(_member("null", tarfile.CHRTYPE), b"")], "neither a file"),
    ([(_member("twice"), b"a"), (_member("twice"), b"b")], "appears twice"),
])
def test_hostile_archives_are_refused_and_write_nothing_outside(
        tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes]], complaint: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    for info, _data in members:
        info.linkname = info.linkname.replace("{outside}", str(outside))
    path = _hostile(tmp_path / "bad.tar.zst", members)
    with pytest.raises(BuildEnvError, match=complaint):
        archive.unpack(path, tmp_path / "dest")
    assert list(outside.iterdir()) == []


def test_an_archive_without_a_manifest_is_not_an_environment(tmp_path: Path) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("usr")
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    path = tmp_path / "plain.tar.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(raw.getvalue()))
    with pytest.raises(BuildEnvError, match="not a cairn build environment"):
        archive.read_manifest(path)
    with pytest.raises(BuildEnvError, match=r"no \.cairn/environment\.json"):
        archive.unpack(path, tmp_path / "dest")
    garbage = tmp_path / "garbage.tar.zst"
    garbage.write_bytes(b"not zstd at all")
    with pytest.raises(BuildEnvError, match="not a valid environment archive"):
        archive.read_manifest(garbage)
