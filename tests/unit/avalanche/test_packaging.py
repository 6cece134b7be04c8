"""Manifests with unsafe paths are refused; packages round-trip through GNU tar."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import pytest
import zstandard

from daemon.avalanche.errors import PackagingError, UnsafePathError
from daemon.avalanche.packaging import PackageMeta, check_archive, check_manifest, write_package
from daemon.avalanche.recipe import Recipe
from daemon.avalanche.split import plan_packages
from daemon.package import FileEntry, FileType, Manifest
from tests.unit.avalanche.support import untar

META = PackageMeta(source="demo", version="1.0", release=1, build_release=1, arch="x86_64")


def _manifest(*files: FileEntry) -> Manifest:
    return Manifest(name="demo", version="1.0", release=1, build_release=1, arch="x86_64",
                    source="demo", files=list(files))  # fmt: skip


@pytest.mark.parametrize(
    "entry",
    [
        FileEntry(path="../etc/passwd", type=FileType.FILE, mode=0o644),
        FileEntry(path="usr/../../etc/passwd", type=FileType.FILE, mode=0o644),
        FileEntry(path="/etc/passwd", type=FileType.FILE, mode=0o644),
        FileEntry(path="usr//bin", type=FileType.DIR, mode=0o755),
        FileEntry(path="usr/bin/x", type=FileType.SYMLINK, mode=0o777, target="/etc/passwd"),
        FileEntry(path="usr/bin/x", type=FileType.SYMLINK, mode=0o777, target="../../../etc"),
    ],
)
def test_unsafe_manifest_is_refused(entry: FileEntry) -> None:
    with pytest.raises(UnsafePathError):
        check_manifest(_manifest(entry))


def test_safe_manifest_passes() -> None:
    ok = _manifest(
        FileEntry(path="usr/lib/libx.so", type=FileType.SYMLINK, mode=0o777, target="libx.so.1"),
        FileEntry(path="usr/bin/x", type=FileType.FILE, mode=0o755, sha256="0" * 64),
    )
    assert check_manifest(ok) is ok


def _compile_library(root: Path) -> None:
    lib = root / "usr/lib"
    lib.mkdir(parents=True)
    src = root.parent / "x.c"
    src.write_text("int x(void) { return 42; }\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-Wl,-soname,libx.so.1", "-o",
                    str(lib / "libx.so.1.0"), str(src)], check=True)  # fmt: skip
    (lib / "libx.so.1").symlink_to("libx.so.1.0")
    (lib / "libx.so").symlink_to("/usr/lib/libx.so.1")  # absolute: rewritten relative
    (lib / "pkgconfig").mkdir()
    (lib / "pkgconfig/x.pc").write_text("Name: x\n")
    (root / "usr/include").mkdir(parents=True)
    (root / "usr/include/x.h").write_text("int x(void);\n")
    (root / "usr/bin").mkdir()
    (root / "usr/bin/xtool").write_text("#!/bin/sh\necho x\n")
    (root / "usr/bin/xtool").chmod(0o755)


def test_split_provides_and_round_trip(tmp_path: Path) -> None:
    root = tmp_path / "install"
    _compile_library(root)
    recipe = Recipe(name="demo", version="1.0", release=1, rundeps=("bash",))
    plans = {p.name: p for p in plan_packages(recipe, root)}
    assert set(plans) == {"demo", "demo-devel"}
    main, devel = plans["demo"], plans["demo-devel"]
    assert {"soname(libx.so.1(x86_64))", "binary(xtool)", "name(demo)", "demo"} <= set(
        main.provides
    )
    assert "bash" in main.depends
    assert "pkgconfig(x)" in devel.provides and "demo" in devel.depends
    assert set(devel.paths) == {"usr/include/x.h", "usr/lib/libx.so", "usr/lib/pkgconfig/x.pc"}

    out = tmp_path / "out"
    manifest, archive = write_package(devel, root, META, out)
    assert archive.name == "demo-devel-1.0-1-1-x86_64.tar.zst"
    assert check_archive(archive) == manifest
    link = next(f for f in manifest.files if f.path == "usr/lib/libx.so")
    assert link.target == "libx.so.1"
    _, main_archive = write_package(main, root, META, out)
    unpacked = tmp_path / "unpacked"
    untar(archive, unpacked)
    untar(main_archive, unpacked)
    assert (unpacked / "usr/lib/libx.so").resolve() == (unpacked / "usr/lib/libx.so.1.0")
    assert (unpacked / ".cairn/packages/demo-devel.json").is_file()
    assert (unpacked / "usr/bin/xtool").stat().st_mode & 0o111


def _archive_with(tmp_path: Path, name: str) -> Path:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    path = tmp_path / "evil.tar.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(raw.getvalue()))
    return path


@pytest.mark.parametrize("member", ["../escape", "/etc/evil", "usr/../../x"])
def test_archive_with_unsafe_member_is_refused(tmp_path: Path, member: str) -> None:
    with pytest.raises(UnsafePathError):
        check_archive(_archive_with(tmp_path, member))


def test_archive_without_manifest_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PackagingError, match="0 manifests"):
        check_archive(_archive_with(tmp_path, "usr/share/x"))


def test_install_tree_with_reserved_dir_is_refused(tmp_path: Path) -> None:
    (tmp_path / ".cairn/packages").mkdir(parents=True)
    (tmp_path / ".cairn/packages/fake.json").write_text("{}")
    with pytest.raises(PackagingError, match="reserved"):
        plan_packages(Recipe(name="demo", version="1", release=1), tmp_path)
