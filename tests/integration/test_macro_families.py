"""Real builds, in a Debian build environment with their tools, of small projects of each
macro family: cmake, meson, a pyproject package, cargo without crates, and systemd's
tmpfiles/sysusers files. Each package is unpacked and checked (binaries run, files where
systemd reads them). The environment (``tests/buildenv/families.toml``) is built once and
kept like the bundled one (:mod:`tests.buildenv_cache`); vessel serves it over HTTP."""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.avalanche.build import BuildResult, run_build
from daemon.avalanche.config import AvalancheConfig, SandboxMode
from events.payloads import Outcome
from tests.buildenv_cache import cached_environment
from tests.support.envserve import Served, served_environment
from tests.unit.avalanche.support import add_recipe, git, task_for, untar

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(900),
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed"),
]

FAMILIES = Path(__file__).resolve().parents[1] / "buildenv" / "families.toml"


@pytest.fixture(scope="module")
def vessel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A vessel state holding the families environment, served on 127.0.0.1."""
    if shutil.which("mmdebstrap") is None:
        pytest.skip("mmdebstrap is not installed (tests/run installs it)")
    built = cached_environment(FAMILIES)
    with served_environment(built.archive, tmp_path_factory.mktemp("vessel")) as served:
        yield served


@pytest.fixture(scope="module")
def builder_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("builder")


def _project(name: str, files: dict[str, bytes]) -> bytes:
    """The project as its release tarball, ``<name>-1.10/...``."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for path, data in sorted(files.items()):
            info = tarfile.TarInfo(f"{name}-1.10/{path}")
            info.size, info.mode, info.mtime = len(data), 0o644, 1700000000
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _build(farm: Served, root: Path, tmp_path: Path, name: str, steps: str,
           files: dict[str, bytes]) -> tuple[BuildResult, Path]:  # fmt: skip
    """Build the project ``files`` (its tarball is an upstream beside the recipe) with
    ``steps``; unpack its packages into ``tmp_path/out``."""
    tarball = _project(name, files)
    stone = (f"name: {name}\nversion: 1.10\nrelease: 1\nsummary: {name}\nlicense: MPL-2.0\n"
             f"upstreams:\n    - {name}-1.10.tar.gz: {hashlib.sha256(tarball).hexdigest()}\n"
             f"{steps}")
    repo = tmp_path / "recipes"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit = add_recipe(repo, name, stone, {f"{name}-1.10.tar.gz": tarball})
    config = AvalancheConfig(root=root, jobs=2, timeout_s=600.0, sandbox=SandboxMode.BWRAP,
                             environment=farm.digest, environment_url=farm.url,
                             environment_key=farm.key, hidden=(farm.state,))  # fmt: skip
    result = run_build(task_for(repo, commit, name), config)
    log = result.log_path.read_text()
    assert result.outcome is Outcome.SUCCESS, log[-4000:]
    assert "toolchain: the recipe names none and boulder's default, llvm, is not in" in log
    out = tmp_path / "out"
    for artefact in result.artefacts:
        untar(artefact.path, out)
    return result, out


def _run(path: Path) -> str:
    return subprocess.run([str(path)], capture_output=True, text=True, check=True).stdout


HELLO_C = b'#include <stdio.h>\nint main(void) { puts("hello from C"); return 0; }\n'


def test_cmake(vessel: Served, builder_root: Path, tmp_path: Path) -> None:
    files = {"CMakeLists.txt": b"cmake_minimum_required(VERSION 3.16)\nproject(hc C)\n"
             b"enable_testing()\nadd_executable(hello-cmake hello.c)\n"
             b"add_test(NAME runs COMMAND hello-cmake)\ninstall(TARGETS hello-cmake)\n",
             "hello.c": HELLO_C}
    steps = ("setup: |\n    %cmake\nbuild: |\n    %cmake_build\n"
             "install: |\n    %cmake_install\ncheck: |\n    %cmake_test\n")
    result, out = _build(vessel, builder_root, tmp_path, "hello-cmake", steps, files)
    assert _run(out / "usr/bin/hello-cmake") == "hello from C\n"
    log = result.log_path.read_text()
    assert "-- Build files have been written to: /build/work/serpent-builddir" in log
    assert "100% tests passed" in log


def test_meson(vessel: Served, builder_root: Path, tmp_path: Path) -> None:
    files = {"meson.build": b"project('hm', 'c')\n"
             b"exe = executable('hello-meson', 'hello.c', install: true)\n"
             b"test('runs', exe)\n", "hello.c": HELLO_C}
    steps = ("setup: |\n    %meson\nbuild: |\n    %meson_build\n"
             "install: |\n    %meson_install\ncheck: |\n    %meson_test\n")
    result, out = _build(vessel, builder_root, tmp_path, "hello-meson", steps, files)
    assert _run(out / "usr/bin/hello-meson") == "hello from C\n"
    assert "1/1 runs" in result.log_path.read_text()


def test_pyproject(vessel: Served, builder_root: Path, tmp_path: Path) -> None:
    files = {"pyproject.toml": b'[build-system]\nrequires = ["setuptools"]\n'
             b'build-backend = "setuptools.build_meta"\n\n[project]\nname = "hello-py"\n'
             b'version = "1.10"\n\n[project.scripts]\nhello-py = "hello_py:main"\n\n'
             b'[tool.setuptools]\npackages = ["hello_py"]\n',
             "hello_py/__init__.py": b'def main() -> None:\n    print("hello from Python")\n'}
    steps = "build: |\n    %pyproject_build\ninstall: |\n    %pyproject_install\n" \
            "    %python_compile\n"
    _result, out = _build(vessel, builder_root, tmp_path, "hello-py", steps, files)
    modules = list(out.rglob("hello_py/__init__.py"))
    assert modules and modules[0].read_text().startswith("def main()")
    assert list(out.rglob("hello_py/__pycache__/__init__.cpython-*.pyc"))
    assert "hello_py" in next(out.rglob("bin/hello-py")).read_text()
    ran = subprocess.run(["python3", "-c", "import hello_py; hello_py.main()"],
                         env={"PYTHONPATH": str(modules[0].parent.parent)},
                         capture_output=True, text=True, check=True)  # fmt: skip
    assert ran.stdout == "hello from Python\n"


def test_cargo_without_crates(vessel: Served, builder_root: Path, tmp_path: Path) -> None:
    files = {"Cargo.toml": b'[package]\nname = "hello-rs"\nversion = "1.10.0"\n'
             b'edition = "2021"\n',
             "Cargo.lock": b"# This file is automatically @generated by Cargo.\nversion = 3\n\n"
             b'[[package]]\nname = "hello-rs"\nversion = "1.10.0"\n',
             "src/main.rs": b'fn main() { println!("hello from Rust"); }\n'
             b"#[test]\nfn it_runs() { assert_eq!(1 + 1, 2); }\n"}
    # Debian bookworm's Rust (1.63) predates -C split-debuginfo on Linux (stable in 1.65) and
    # named debug levels (debug = "full", 1.71), which boulder's debug flags and cargo
    # environment use: this recipe sets them the old way, as one for an old toolchain would.
    steps = ("tuning:\n    - debug: false\n"
             "environment: |\n    unset CARGO_PROFILE_RELEASE_SPLIT_DEBUGINFO\n"
             "    export CARGO_PROFILE_RELEASE_DEBUG=2\n"
             "setup: |\n    %cargo_fetch\nbuild: |\n    %cargo_build\n"
             "install: |\n    %cargo_install\ncheck: |\n    %cargo_test\n")
    result, out = _build(vessel, builder_root, tmp_path, "hello-rs", steps, files)
    assert _run(out / "usr/bin/hello-rs") == "hello from Rust\n"
    assert "test it_runs ... ok" in result.log_path.read_text()


def test_tmpfiles_and_sysusers(vessel: Served, builder_root: Path, tmp_path: Path) -> None:
    steps = ("install: |\n"
             "    %tmpfiles d /run/hello-units 0755 root root -\n"
             "    %tmpfiles f /var/lib/hello-units/state 0644 root root -\n"
             "    %sysusers 'u hello-units - \"Hello units\" /var/lib/hello-units'\n")
    _result, out = _build(vessel, builder_root, tmp_path, "hello-units", steps,
                          {"README": b"nothing to compile\n"})
    tmpfiles = out / "usr/lib/tmpfiles.d/hello-units.conf"
    sysusers = out / "usr/lib/sysusers.d/hello-units.conf"
    assert tmpfiles.read_text() == ("d /run/hello-units 0755 root root -\n"
                                    "f /var/lib/hello-units/state 0644 root root -\n")
    assert sysusers.read_text() == 'u hello-units - "Hello units" /var/lib/hello-units\n'
    if shutil.which("systemd-sysusers"):
        checked = subprocess.run(["systemd-sysusers", "--dry-run", "--root", str(out),
                                  str(sysusers)], capture_output=True, text=True, check=False)
        assert checked.returncode == 0, checked.stderr


def _elf_class(path: Path) -> int:
    """1 for a 32-bit ELF file, 2 for a 64-bit one."""
    head = path.read_bytes()[:5]
    assert head[:4] == b"\x7fELF", path
    return head[4]


def test_emul32_builds_the_32_bit_variant_first(vessel: Served, builder_root: Path,
                                                tmp_path: Path) -> None:
    files = {"CMakeLists.txt": b"cmake_minimum_required(VERSION 3.16)\nproject(g C)\n"
             b"add_library(greet32 SHARED greet.c)\n"
             b"set_target_properties(greet32 PROPERTIES VERSION 1 SOVERSION 1)\n"
             b"install(TARGETS greet32)\n",
             "greet.c": b"int greet(void) { return (int) sizeof(void *); }\n"}
    steps = ("emul32: yes\nsetup: |\n    %cmake\nbuild: |\n    %cmake_build\n"
             "install: |\n    %cmake_install\n")
    result, out = _build(vessel, builder_root, tmp_path, "greet32", steps, files)
    log = result.log_path.read_text()
    assert log.index("step setup (emul32/x86_64)") < log.index("step setup\n")
    assert _elf_class(out / "usr/lib32/libgreet32.so.1") == 1
    assert _elf_class(out / "usr/lib/libgreet32.so.1") == 2
