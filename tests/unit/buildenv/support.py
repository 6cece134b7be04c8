"""Small real environments for tests: a synthetic tree packed by the real packer."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from daemon.buildenv import archive, contents, declaration
from daemon.buildenv.manifest import EnvRecord

HOST_LIBZ = Path("/usr/lib/x86_64-linux-gnu/libz.so.1")


def make_tree(root: Path, *, marker: str = "one") -> Path:
    """A root shaped like a merged-/usr Debian: a dpkg database, a binary, a library, a .pc
    file, absolute and relative symlinks, a read-only directory and a file under dev/."""
    for d in ("usr/bin", "usr/lib/x86_64-linux-gnu/pkgconfig", "etc/alternatives",
              "var/lib/dpkg", "dev", "root"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "bin").symlink_to("usr/bin")
    (root / "lib").symlink_to("usr/lib")
    tool = root / "usr/bin/tool"
    tool.write_text(f"#!/bin/sh\necho {marker}\n")
    tool.chmod(0o4755)  # setuid: the packer must drop it
    (root / "etc/alternatives/cc").symlink_to("/usr/bin/tool")
    (root / "usr/bin/cc").symlink_to("/etc/alternatives/cc")
    (root / "usr/lib/x86_64-linux-gnu/pkgconfig/zlib.pc").write_text("Name: zlib\n")
    if HOST_LIBZ.exists():
        shutil.copyfile(HOST_LIBZ, root / "usr/lib/x86_64-linux-gnu/libz.so.1")
    (root / "var/lib/dpkg/status").write_text(
        "Package: zlib1g\nStatus: install ok installed\nVersion: 1:1.2.13\n\n"
        "Package: tool\nStatus: install ok installed\nVersion: 1.0\n\n"
        "Package: gone\nStatus: deinstall ok config-files\nVersion: 0.1\n")
    (root / "dev/null-ish").write_text("never packed")
    (root / "root").chmod(0o700)
    return root


def pack_tree(root: Path, out_dir: Path, *, name: str = "tiny", epoch: int = 1_700_000_000
              ) -> tuple[EnvRecord, Path]:
    """Pack ``root`` as an environment named ``name``; return its record and archive."""
    decl = declaration.parse({"name": name, "source_date_epoch": epoch,
                              "base": {"suite": "bookworm"}}, origin="test")
    entries = archive.scan(root)
    manifest = contents.derive(root, entries, decl, sources=["deb http://x bookworm main"],
                               layer=None)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".{name}.tmp"
    digest = archive.pack(root, entries, manifest, tmp)
    final = out_dir / f"{digest}.tar.zst"
    os.replace(tmp, final)
    return EnvRecord(digest=digest, size=final.stat().st_size, manifest=manifest), final


def packed(tmp_path: Path, marker: str) -> tuple[EnvRecord, Path]:
    """A small environment (:func:`make_tree`, its tool echoes ``marker``) packed into
    ``tmp_path / "built"``: its record and archive."""
    return pack_tree(make_tree(tmp_path / f"tree-{marker}", marker=marker),
                     tmp_path / "built", name=f"env-{marker}")
