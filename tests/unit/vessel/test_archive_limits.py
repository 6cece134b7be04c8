"""What one archive may hold: bounded sizes and counts, no privileged or writable modes,
every file hashed in its manifest. Each refusal names the file and the limit it hit."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest
import zstandard

from daemon.package import FileEntry, FileType
from daemon.vessel.archive import check_against_build, inspect_archive
from daemon.vessel.config import ArchiveLimits, VesselConfig
from daemon.vessel.errors import ImportRefused
from events.payloads import Artefact
from tests.unit.vessel.builders import Pkg, add_member, archive_bytes, build_done

FILES = {"usr/bin/tool": b"#!/bin/sh\necho tool\n", "usr/share/tool/data": b"12345678"}
ROOMY = ArchiveLimits(unpacked_bytes=10**8, members=1000, file_bytes=10**8)


def check(tmp_path: Path, pkg: Pkg, limits: ArchiveLimits = ROOMY) -> None:
    """Inspect a real archive and check it against its build, as an import does."""
    blob = archive_bytes(pkg)
    path = tmp_path / pkg.filename
    path.write_bytes(blob)
    artefact = Artefact(name=pkg.name, filename=pkg.filename, url="http://x/",
                        sha256=hashlib.sha256(blob).hexdigest(), size=len(blob))
    inspected = inspect_archive(path, pkg.filename, limits)
    check_against_build(inspected, artefact, build_done([artefact], source=pkg.name))


def test_a_file_over_the_per_file_limit_is_refused(tmp_path: Path) -> None:
    limits = ArchiveLimits(unpacked_bytes=10**8, members=1000, file_bytes=10)
    with pytest.raises(ImportRefused, match=r"file 'usr/bin/tool' is 20 bytes, over the limit "
                                            r"of 10 bytes per file \(max_file_bytes\)"):
        check(tmp_path, Pkg(name="tool", files=dict(FILES)), limits)


def test_too_many_members_are_refused(tmp_path: Path) -> None:
    limits = ArchiveLimits(unpacked_bytes=10**8, members=3, file_bytes=10**8)
    with pytest.raises(ImportRefused, match=r"more than the limit of 3 members \(max_members\)"):
        check(tmp_path, Pkg(name="tool", files=dict(FILES)), limits)


def test_an_archive_within_every_limit_passes(tmp_path: Path) -> None:
    pkg = Pkg(name="tool", files=dict(FILES), tweak=add_member("var/tmp", tarfile.DIRTYPE,
                                                               mode=0o1777))
    check(tmp_path, pkg, ArchiveLimits(unpacked_bytes=10**4, members=20, file_bytes=1024))


@pytest.mark.parametrize(
    ("kind", "mode", "reason"),
    [
        (tarfile.REGTYPE, 0o4755, r"file 'usr/x' has mode 4755 \(setuid\)"),
        (tarfile.REGTYPE, 0o2755, r"file 'usr/x' has mode 2755 \(setgid\)"),
        (tarfile.REGTYPE, 0o6755, r"mode 6755 \(setuid, setgid\)"),
        (tarfile.REGTYPE, 0o1644, r"mode 1644 \(sticky\)"),
        (tarfile.REGTYPE, 0o666, r"file 'usr/x' has mode 0666 \(world-writable\)"),
        (tarfile.DIRTYPE, 0o777, r"directory 'usr/x' has mode 0777 \(world-writable without "
                                 r"the sticky bit\)"),
        (tarfile.DIRTYPE, 0o2755, r"directory 'usr/x' has mode 2755 \(setgid\)"),
        (tarfile.DIRTYPE, 0o4755, r"directory 'usr/x' has mode 4755 \(setuid\)"),
    ],
)
def test_privileged_or_writable_modes_are_refused(tmp_path: Path, kind: bytes, mode: int,
                                                  reason: str) -> None:
    pkg = Pkg(name="tool", files=dict(FILES), tweak=add_member("usr/x", kind, mode=mode))
    with pytest.raises(ImportRefused, match=reason) as caught:
        check(tmp_path, pkg)
    assert pkg.filename in str(caught.value)


def test_device_nodes_are_refused(tmp_path: Path) -> None:
    for kind, what in ((tarfile.CHRTYPE, "a character device"),
                       (tarfile.BLKTYPE, "a block device")):
        pkg = Pkg(name="tool", files=dict(FILES), tweak=add_member("dev/node", kind))
        with pytest.raises(ImportRefused, match=f"member 'dev/node' is {what}"):
            check(tmp_path, pkg)


def _entries(**change: object) -> list[FileEntry]:
    """The honest manifest entries of FILES, with ``change`` applied to usr/bin/tool."""
    entries = []
    for path, data in FILES.items():
        fields: dict[str, object] = dict(path=path, type=FileType.FILE, mode=0o644,
                                         size=len(data),
                                         sha256=hashlib.sha256(data).hexdigest())
        if path == "usr/bin/tool":
            fields.update(change)
        entries.append(FileEntry(**fields))  # type: ignore[arg-type]
    return entries


def test_a_file_without_a_sha256_in_its_manifest_is_refused(tmp_path: Path) -> None:
    pkg = Pkg(name="tool", files=dict(FILES), manifest_fields={"files": _entries(sha256=None)})
    with pytest.raises(ImportRefused, match="manifest entry for file 'usr/bin/tool' has no "
                                            "sha256"):
        check(tmp_path, pkg)


def test_a_manifest_mode_unlike_the_archive_is_refused(tmp_path: Path) -> None:
    # An installer that applies the manifest's mode would make the file setuid.
    pkg = Pkg(name="tool", files=dict(FILES), manifest_fields={"files": _entries(mode=0o4755)})
    with pytest.raises(ImportRefused, match="'usr/bin/tool' has mode 0644 in the archive but "
                                            "4755 in the manifest"):
        check(tmp_path, pkg)


class _Zeros(io.RawIOBase):
    """``size`` zero bytes, produced as read: a huge member without holding it in memory."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        count = min(len(buffer), self.left)
        buffer[:count] = bytes(count)
        self.left -= count
        return count


def _zero_archive(path: Path, sizes: list[int]) -> None:
    with path.open("wb") as raw:
        writer = zstandard.ZstdCompressor(level=1).stream_writer(raw, closefd=False)
        with writer, tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for number, size in enumerate(sizes):
                info = tarfile.TarInfo(f"usr/share/zeros{number}")
                info.size = size
                tar.addfile(info, _Zeros(size))


def test_the_default_limits_refuse_a_gigabyte_bomb(tmp_path: Path) -> None:
    # 1.2 GB of files in a 40 kB archive: the defaults stop it at the file that crosses them.
    defaults = VesselConfig(state_dir=tmp_path).archive_limits
    path = tmp_path / "bomb.tar.zst"
    _zero_archive(path, [400 * 1024**2] * 3)
    with pytest.raises(ImportRefused, match=r"limit of 1073741824 bytes of files "
                                            r"\(max_unpacked_bytes\), reached at "
                                            r"'usr/share/zeros2'"):
        inspect_archive(path, "bomb", defaults)


def test_the_default_limits_refuse_one_huge_file_without_reading_it(tmp_path: Path) -> None:
    defaults = VesselConfig(state_dir=tmp_path).archive_limits
    path = tmp_path / "huge.tar.zst"
    _zero_archive(path, [600 * 1024**2])
    with pytest.raises(ImportRefused, match=r"file 'usr/share/zeros0' is 629145600 bytes, over "
                                            r"the limit of 536870912 bytes per file"):
        inspect_archive(path, "huge", defaults)


def test_the_default_member_limit_is_below_a_hostile_count() -> None:
    # 200,000 files were accepted by default; building such an archive in a unit test costs
    # seconds, and the count check itself is exercised above with a small limit.
    assert VesselConfig(state_dir=Path("unused")).max_members < 200_000
