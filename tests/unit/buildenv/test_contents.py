"""An environment's manifest: packages from dpkg and cairn, provides derived from files by
the same function as packages' provides."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from daemon.avalanche.split import file_provides
from daemon.buildenv import archive, contents, declaration
from daemon.package import Manifest

from .support import HOST_LIBZ, make_tree


def _derive(root: Path) -> contents.EnvManifest:
    decl = declaration.parse({"name": "t", "base": {"suite": "bookworm"}}, origin="t")
    return contents.derive(root, archive.scan(root), decl, sources=[], layer=None)


def test_debian_tree_provides(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "root")
    m = _derive(root)
    assert [(p.name, p.version, p.origin) for p in m.packages] == [
        ("tool", "1.0", "debian"), ("zlib1g", "1:1.2.13", "debian")]
    assert {"binary(tool)", "binary(cc)", "pkgconfig(zlib)", "name(zlib1g)",
            "name(tool)"} <= set(m.provides)
    assert "name(gone)" not in m.provides  # removed, only its configuration is left
    assert m.provides == sorted(m.provides)
    assert m.files == 4 if HOST_LIBZ.exists() else 3


@pytest.mark.skipif(not HOST_LIBZ.exists(), reason="needs the host's libz.so.1 as a real ELF")
def test_sonames_come_from_elf_files_and_needs_are_checked(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "root")
    m = _derive(root)
    assert "soname(libz.so.1(x86_64))" in m.provides
    assert m.unresolved == ["soname(libc.so.6(x86_64))"]  # libz needs libc; the tree lacks it


def test_cairn_packages_count_with_their_provides(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "root")
    (root / ".cairn/packages").mkdir(parents=True)
    manifest = Manifest(name="libgreet", version="1.0.0", release=1, build_release=2,
                        arch="x86_64", source="libgreet", provides=["libgreet",
                        "name(libgreet)", "soname(libgreet.so.1(x86_64))"])
    (root / ".cairn/packages/libgreet.json").write_bytes(msgspec.json.encode(manifest))
    m = _derive(root)
    assert ("libgreet", "1.0.0-1-2", "cairn") in [(p.name, p.version, p.origin)
                                                 for p in m.packages]
    assert "soname(libgreet.so.1(x86_64))" in m.provides


def test_pkgconfig_dirs_the_shared_deriver_knows(tmp_path: Path) -> None:
    paths = ["usr/lib/pkgconfig/a.pc", "usr/share/pkgconfig/b.pc", "usr/lib64/pkgconfig/c.pc",
             "usr/lib/x86_64-linux-gnu/pkgconfig/d.pc", "usr/lib/python3/pkgconfig/no.pc",
             "usr/lib/pkgconfig/sub/no.pc"]
    for p in paths:
        (tmp_path / p).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / p).write_text("")
    provides, _ = file_provides(paths, tmp_path)
    assert provides == {"pkgconfig(a)", "pkgconfig(b)", "pkgconfig(c)", "pkgconfig(d)"}
