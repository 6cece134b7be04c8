"""The bundled Debian environment, really made by mmdebstrap: its manifest, reproducibility,
and the example recipes compiling in a per-build root where nothing of the host is visible."""

from __future__ import annotations

import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from daemon.avalanche.packaging import PackageMeta, write_package
from daemon.avalanche.recipe import load_recipe
from daemon.avalanche.split import plan_packages
from daemon.buildenv import bootstrap, buildroot, declaration
from daemon.buildenv.build import build
from daemon.buildenv.cache import CachedEnvironment
from daemon.buildenv.manifest import Origin
from daemon.buildenv.pkgcache import PackageCache

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "recipes"
BWRAP = shutil.which("bwrap")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_manifest_names_its_packages_and_provides(debian_environment: CachedEnvironment
                                                  ) -> None:
    m = debian_environment.manifest
    names = {p.name for p in m.packages if p.origin is Origin.DEBIAN}
    assert {"gcc-12", "libc6", "libc6-dev", "make", "pkgconf", "bash"} <= names
    assert {"binary(gcc)", "binary(cc)", "binary(make)", "binary(pkg-config)", "binary(bash)",
            "soname(libc.so.6(x86_64))", "name(gcc-12)", "name(libc6-dev)"} <= set(m.provides)
    assert m.unresolved == []
    decl = declaration.load(Path(__file__).resolve().parents[2] / "daemon/buildenv/default.toml")
    assert m.declaration == decl.key()
    assert m.base is not None and m.base.sources == bootstrap.sources_for(decl.base)  # type: ignore[arg-type]
    root = debian_environment.root
    assert not list((root / "usr/share/man").glob("man1/*")), "manual pages were excluded"
    assert (root / "usr/share/doc/gcc-12/copyright").is_file(), "copyright files are kept"


def _run(root: Path, work: Path, script: str) -> subprocess.CompletedProcess[str]:
    assert BWRAP is not None
    argv = [BWRAP, *buildroot.sandbox_args(root, [work]), "--unshare-all",
            "--die-with-parent", "--new-session", "--clearenv", "--setenv", "PATH",
            "/usr/bin:/bin", "--setenv", "HOME", str(work), "--chdir", str(work),
            "--", "/bin/bash", "-e", "-c", script]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(BWRAP is None, reason="bubblewrap is not installed")
def test_examples_build_in_a_root_of_environment_and_dependencies(
        debian_environment: CachedEnvironment, tmp_path: Path) -> None:
    env = debian_environment.root
    work = tmp_path / "work"
    shutil.copytree(EXAMPLES / "libgreet" / "src", work / "libgreet")
    shutil.copytree(EXAMPLES / "greet" / "src", work / "greet")
    install = work / "install"
    root1 = tmp_path / "root1"
    buildroot.assemble(env, [], root1, mountpoints=[work])
    done = _run(root1, work, f"cd libgreet && make PREFIX=/usr LIBDIR=/usr/lib "
                f"INCLUDEDIR=/usr/include VERSION=1.0.0 && make install PREFIX=/usr "
                f"LIBDIR=/usr/lib INCLUDEDIR=/usr/include VERSION=1.0.0 DESTDIR={install}")
    assert done.returncode == 0, done.stdout + done.stderr
    recipe = load_recipe(EXAMPLES / "libgreet" / "stone.yaml")
    meta = PackageMeta(source="libgreet", version="1.0.0", release=1, build_release=1,
                       arch="x86_64")
    packages = PackageCache(tmp_path / "packages")
    unpacked = []
    for plan in plan_packages(recipe, install):
        manifest, path = write_package(plan, install, meta, tmp_path / "pkgs")
        unpacked.append(packages.unpacked(path, manifest.name))
    shutil.rmtree(install)
    root2 = tmp_path / "root2"
    buildroot.assemble(env, unpacked, root2, mountpoints=[work])
    done = _run(root2, work, "pkg-config --libs libgreet && cd greet && make PREFIX=/usr && "
                "./greet")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "-lgreet" in done.stdout and "hello" in done.stdout.lower()


@pytest.mark.skipif(BWRAP is None, reason="bubblewrap is not installed")
def test_nothing_of_the_host_is_visible_in_the_root(debian_environment: CachedEnvironment,
                                                    tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    root = tmp_path / "root"
    buildroot.assemble(debian_environment.root, [], root, mountpoints=[work])
    own_root = "".join(f"{p.name} " for p in sorted((debian_environment.root / "root").iterdir()))
    secret = Path(sys.executable)  # this host's own Python, like a host /usr/bin/cairn
    probes = {
        "host python": f"test ! -e {secret}",
        "checkout": f"test ! -e {Path(__file__).resolve()}",
        "/etc/cairn": "test ! -e /etc/cairn",
        "/root is the environment's": f"test \"$(ls -A /root | tr '\\n' ' ')\" = '{own_root}'",
        "home of the host": f"test ! -e {Path.home() / '.cache' / 'cairn-test'}",
        "network": "! (echo > /dev/tcp/127.0.0.1/5672) 2>/dev/null",
        "read-only /usr": "! touch /usr/bin/planted 2>/dev/null",
        "read-only /etc": "! (echo x > /etc/planted) 2>/dev/null",
    }
    for what, probe in probes.items():
        done = _run(root, work, probe)
        assert done.returncode == 0, f"{what}: {done.stdout}{done.stderr}"
    assert not (root / "usr/bin/planted").exists()
    done = _run(root, work, "echo kept > out.txt")
    assert done.returncode == 0 and (work / "out.txt").read_text() == "kept\n"


def test_same_declaration_same_inputs_same_digest(tmp_path: Path) -> None:
    """Two builds of one declaration, side by side on one mirror state, are bit-identical."""
    if shutil.which("mmdebstrap") is None:
        pytest.skip("mmdebstrap is not installed")
    decl = declaration.parse({"name": "repro", "base": {
        "suite": "bookworm", "variant": "essential",
        "exclude": ["/usr/share/doc/*", "/usr/share/man/*", "/usr/share/locale/*"]}},
        origin="test")
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = [pool.submit(build, decl, tmp_path / f"out{i}", cache_dir=tmp_path / "c")
                for i in (1, 2)]
        first, second = (r.result() for r in runs)
    assert first.record.manifest.provides == second.record.manifest.provides
    assert first.record.digest == second.record.digest
    assert first.archive.read_bytes() == second.archive.read_bytes()
