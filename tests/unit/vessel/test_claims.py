"""A package's declared providers must be backed by its files (the rule in daemon.provides).

Regression: vessel signed ``provides`` that no file backed, so an empty package could claim
``binary(vtool)`` or a library's soname.
"""

from __future__ import annotations

import hashlib
import platform
import shutil
import subprocess
from pathlib import Path

import pytest

from daemon.vessel.archive import check_against_build, inspect_archive
from daemon.vessel.claims import check_provides
from daemon.vessel.config import ArchiveLimits
from daemon.vessel.errors import ImportRefused
from events.payloads import Artefact
from tests.unit.vessel.builders import Pkg, archive_bytes, build_done

LIMITS = ArchiveLimits(unpacked_bytes=10**8, members=1000, file_bytes=10**8)
SCRIPT = b"#!/bin/sh\necho vtool\n"
MACHINE = {"x86_64": "x86_64", "aarch64": "aarch64"}.get(platform.machine(), "")


def check(tmp_path: Path, pkg: Pkg) -> None:
    """Everything an import checks of one archive, the provides included."""
    blob = archive_bytes(pkg)
    path = tmp_path / pkg.filename
    path.write_bytes(blob)
    artefact = Artefact(name=pkg.name, filename=pkg.filename, url="http://x/",
                        sha256=hashlib.sha256(blob).hexdigest(), size=len(blob))
    inspected = inspect_archive(path, pkg.filename, LIMITS)
    check_against_build(inspected, artefact, build_done([artefact], source=pkg.name))
    check_provides(inspected, pkg.filename)


@pytest.mark.parametrize(
    ("files", "modes", "symlinks", "provides"),
    [
        ({"usr/bin/vtool": SCRIPT}, {"usr/bin/vtool": 0o755}, {}, ["binary(vtool)"]),
        ({"usr/bin/vtool": SCRIPT}, {"usr/bin/vtool": 0o700}, {"usr/bin/vt": "vtool"},
         ["binary(vtool)", "binary(vt)"]),
        ({"usr/sbin/vtoold": SCRIPT}, {"usr/sbin/vtoold": 0o755}, {}, ["sysbinary(vtoold)"]),
        ({"usr/lib/pkgconfig/vt.pc": b"Name: vt\n",
          "usr/lib/x86_64-linux-gnu/pkgconfig/vtx.pc": b"Name: vtx\n",
          "usr/share/pkgconfig/vts.pc": b"Name: vts\n"}, {}, {},
         ["pkgconfig(vt)", "pkgconfig(vtx)", "pkgconfig(vts)"]),
        ({}, {}, {}, ["vtool", "name(vtool)"]),
    ],
)
def test_backed_providers_pass(tmp_path: Path, files: dict[str, bytes], modes: dict[str, int],
                               symlinks: dict[str, str], provides: list[str]) -> None:
    check(tmp_path, Pkg(name="vtool", files=files, modes=modes, symlinks=symlinks,
                        provides=provides))


@pytest.mark.parametrize(
    ("files", "modes", "provides", "reason"),
    [
        ({}, {}, ["binary(vtool)"],
         r"binary\(vtool\) \(needs an executable file or symlink at usr/bin/vtool\)"),
        ({"usr/bin/vtool": SCRIPT}, {}, ["binary(vtool)"], r"binary\(vtool\)"),  # not +x
        ({"usr/local/bin/vtool": SCRIPT}, {"usr/local/bin/vtool": 0o755}, ["binary(vtool)"],
         r"binary\(vtool\)"),
        ({"usr/bin/vtool": SCRIPT}, {"usr/bin/vtool": 0o755}, ["sysbinary(vtool)"],
         r"sysbinary\(vtool\) \(needs an executable file or symlink at usr/sbin/vtool\)"),
        ({"usr/lib/python3/pkgconfig/vt.pc": b""}, {}, ["pkgconfig(vt)"],
         r"pkgconfig\(vt\) \(needs vt\.pc in a pkg-config directory\)"),
        ({}, {}, ["soname(libvt.so.1(x86_64))"],
         r"soname\(libvt\.so\.1\(x86_64\)\) \(needs an ELF shared object"),
        ({}, {}, ["name(openssl)"], r"name\(openssl\)"),
        ({}, {}, ["openssl"], r"declares providers that no file in it backs: openssl"),
        ({}, {}, ["python(vt)"], r"python\(vt\) \(needs nothing vessel can check"),
    ],
)
def test_unbacked_providers_are_refused(tmp_path: Path, files: dict[str, bytes],
                                        modes: dict[str, int], provides: list[str],
                                        reason: str) -> None:
    pkg = Pkg(name="vtool", files=files, modes=modes, provides=provides)
    with pytest.raises(ImportRefused, match=reason) as caught:
        check(tmp_path, pkg)
    assert f"artefact {pkg.filename}: package vtool declares providers" in str(caught.value)


def test_a_long_list_of_unbacked_providers_is_cut_short(tmp_path: Path) -> None:
    pkg = Pkg(name="vtool", provides=[f"binary(t{i})" for i in range(12)])
    with pytest.raises(ImportRefused, match=r"binary\(t2\) \(needs [^;]*\) and 7 more$"):
        check(tmp_path, pkg)


@pytest.fixture(scope="module")
def libvt(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real shared object whose DT_SONAME is libvt.so.1, built with the host's compiler."""
    gcc = shutil.which("gcc")
    if gcc is None or not MACHINE:
        pytest.skip("needs gcc on x86_64 or aarch64 to build a shared object")
    work = tmp_path_factory.mktemp("libvt")
    (work / "vt.c").write_text("int vt(void) { return 42; }\n")
    subprocess.run([gcc, "-shared", "-fPIC", "-Wl,-soname,libvt.so.1", "-o",
                    str(work / "libvt.so"), str(work / "vt.c")], check=True, timeout=60)
    return (work / "libvt.so").read_bytes()


def test_a_soname_is_backed_by_an_elf_with_that_soname(tmp_path: Path, libvt: bytes) -> None:
    # Many ELF files and the library last: the second read goes through them all.
    files = {f"usr/lib/vt/plugin{i}.so": libvt[:64] + bytes(100) for i in range(5)}
    files["usr/lib/libvt.so.1.0.0"] = libvt
    check(tmp_path, Pkg(name="libvt", files=files, symlinks={"usr/lib/libvt.so.1":
                                                             "libvt.so.1.0.0"},
                        provides=[f"soname(libvt.so.1({MACHINE}))"]))


@pytest.mark.parametrize("claim", ["soname(libssl.so.3({machine}))",
                                   "soname(libvt.so.1(riscv64))"])
def test_a_soname_the_elf_does_not_have_is_refused(tmp_path: Path, libvt: bytes,
                                                   claim: str) -> None:
    provider = claim.format(machine=MACHINE)
    pkg = Pkg(name="libvt", files={"usr/lib/libvt.so.1.0.0": libvt},
              provides=[f"soname(libvt.so.1({MACHINE}))", provider])
    with pytest.raises(ImportRefused, match="no file in it backs") as caught:
        check(tmp_path, pkg)
    assert provider in str(caught.value)
    assert f"soname(libvt.so.1({MACHINE}))" not in str(caught.value)


def test_a_file_named_like_the_library_but_not_elf_backs_nothing(tmp_path: Path) -> None:
    pkg = Pkg(name="libvt", files={"usr/lib/libvt.so.1": b"\x7fELF but not really"},
              provides=["soname(libvt.so.1(x86_64))"])
    with pytest.raises(ImportRefused, match=r"soname\(libvt\.so\.1\(x86_64\)\)"):
        check(tmp_path, pkg)
