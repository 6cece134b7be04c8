"""Per-build roots: an environment plus dependency packages as a hard-link farm."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.avalanche.packaging import PackageMeta, write_package
from daemon.avalanche.split import PackagePlan
from daemon.buildenv import archive, buildroot
from daemon.buildenv.errors import BuildEnvError
from daemon.buildenv.pkgcache import PackageCache

from .support import make_tree, pack_tree


def _env(tmp_path: Path) -> Path:
    _record, path = pack_tree(make_tree(tmp_path / "tree"), tmp_path / "built")
    root = tmp_path / "cache" / "env"
    archive.unpack(path, root)
    return root


def _package(tmp_path: Path, name: str, files: dict[str, str]) -> Path:
    install = tmp_path / f"install-{name}"
    for rel, text in files.items():
        (install / rel).parent.mkdir(parents=True, exist_ok=True)
        (install / rel).write_text(text)
    plan = PackagePlan(name, "test", tuple(sorted(files)), (), (name,))
    meta = PackageMeta(source=name, version="1.0", release=1, build_release=1, arch="x86_64")
    _manifest, path = write_package(plan, install, meta, tmp_path / "pkgs")
    return path


def test_root_links_the_environment_and_merges_dependencies(tmp_path: Path) -> None:
    env = _env(tmp_path)
    packages = PackageCache(tmp_path / "cache" / "packages")
    a = packages.unpacked(_package(tmp_path, "liba", {
        "usr/lib/liba.so.1": "lib", "usr/lib/pkgconfig/a.pc": "Name: a",
        "usr/include/a.h": "int a;"}), "a" * 64)
    b = packages.unpacked(_package(tmp_path, "tools", {
        "bin/helper": "merged-usr: lands in usr/bin", "usr/bin/tool": "replaces the env's"}),
        "b" * 64)
    assert packages.unpacked(tmp_path / "unused.tar.zst", "a" * 64) == a  # unpacked once
    dest = tmp_path / "builds" / "1" / "root"
    stats = buildroot.assemble(env, [a, b], dest)
    assert os.stat(dest / "usr").st_ino != os.stat(env / "usr").st_ino  # its own directories
    assert os.stat(dest / "var/lib/dpkg/status").st_ino == os.stat(
        env / "var/lib/dpkg/status").st_ino  # a hard link, not a copy
    assert (dest / "usr/lib/pkgconfig/a.pc").read_text() == "Name: a"
    assert os.stat(dest / "usr/lib/liba.so.1").st_ino == os.stat(
        a / "usr/lib/liba.so.1").st_ino
    assert (dest / "usr/bin/helper").read_text() == "merged-usr: lands in usr/bin"
    assert os.path.islink(dest / "bin")
    assert (dest / "usr/bin/tool").read_text() == "replaces the env's"
    assert (env / "usr/bin/tool").read_text().startswith("#!/bin/sh")  # cache untouched
    assert stats.replaced == ["usr/bin/tool"]
    assert sorted(p.name for p in (dest / ".cairn/packages").iterdir()) == [
        "liba.json", "tools.json"]
    assert stats.linked > 0 and stats.copied == 0
    buildroot.remove(dest)
    assert not dest.exists() and (env / "usr/bin/tool").exists()


def test_links_in_the_root_never_lead_outside_it(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    outside = tmp_path / "host-etc"
    outside.mkdir()
    (tree / "opt").symlink_to(str(outside))  # absolute: means the root's own path
    (tree / "srv").symlink_to("../../../../../../../../" + str(outside).lstrip("/"))
    _record, path = pack_tree(tree, tmp_path / "built")
    env = tmp_path / "env"
    archive.unpack(path, env)
    packages = PackageCache(tmp_path / "packages")
    pkg = packages.unpacked(_package(tmp_path, "p", {"opt/x": "1", "srv/y": "2"}), "c" * 64)
    dest = tmp_path / "root"
    buildroot.assemble(env, [pkg], dest)
    assert list(outside.iterdir()) == []
    assert (dest / str(outside).lstrip("/") / "x").read_text() == "1"
    assert (dest / str(outside).lstrip("/") / "y").read_text() == "2"


def test_a_file_where_the_environment_has_a_directory_is_refused(tmp_path: Path) -> None:
    env = _env(tmp_path)
    packages = PackageCache(tmp_path / "packages")
    pkg = packages.unpacked(_package(tmp_path, "p", {"usr/lib/x86_64-linux-gnu": "file"}),
                            "d" * 64)
    with pytest.raises(BuildEnvError, match="a file, but a directory"):
        buildroot.assemble(env, [pkg], tmp_path / "root")


_HOLD = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_SH)
print("held", flush=True)
sys.stdin.read()
"""


def test_package_cache_evicts_least_recently_used_never_while_in_use(tmp_path: Path) -> None:
    cache = PackageCache(tmp_path / "packages", keep=2)
    trees = [cache.unpacked(_package(tmp_path, f"p{i}", {f"usr/share/p{i}": "x"}), f"{i}" * 64)
             for i in range(3)]
    os.utime(trees[0], (1, 1))  # the oldest use
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(tmp_path / "packages/.lock")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert cache.evict() == 0 and trees[0].exists()  # a builder is linking from it
    finally:
        assert holder.stdin is not None and holder.stdout is not None
        holder.stdin.close()
        holder.wait(timeout=10)
        holder.stdout.close()
    assert cache.evict() == 1
    assert not trees[0].exists() and trees[1].exists() and trees[2].exists()
