"""Archives are unpacked safely: nothing lands outside the destination."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from daemon.avalanche.errors import UnsafePathError
from daemon.avalanche.unpack import strip_single_top, unpack


def _tar(path: Path, members: list[tarfile.TarInfo]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info in members:
            data = b"x" * info.size if info.isreg() else None
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _reg(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = 1
    return info


def _link(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info


@pytest.mark.parametrize(
    "members",
    [
        [_reg("../escaped")],
        [_reg("/tmp/absolute-escape")],
        [_link("pkg/link", "../../outside")],
        [_link("pkg/abs", "/etc/passwd")],
    ],
)
def test_unsafe_tar_is_refused(tmp_path: Path, members: list[tarfile.TarInfo]) -> None:
    archive = _tar(tmp_path / "evil.tar.gz", members)
    dest = tmp_path / "dest"
    with pytest.raises(UnsafePathError):
        unpack(archive, dest)
    assert not (tmp_path / "escaped").exists()
    assert not (tmp_path / "outside").exists()


def test_unsafe_zip_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../escaped", b"x")
    with pytest.raises(UnsafePathError):
        unpack(archive, tmp_path / "dest")
    assert not (tmp_path / "escaped").exists()


def test_tar_with_single_top_dir_is_stripped(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "src-1.0.tar.gz", [_reg("src-1.0/configure"), _reg("src-1.0/a/b")])
    dest = tmp_path / "dest"
    unpack(archive, dest)
    top = strip_single_top(dest)
    assert top.name == "src-1.0"
    assert (top / "configure").is_file() and (top / "a/b").is_file()
