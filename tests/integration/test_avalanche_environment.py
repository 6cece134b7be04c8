"""Builds in a build environment: the example recipes compile in the bundled Debian
environment pulled by digest from vessel over real HTTP, with their dependencies linked into
the root; a dependency only the host has is unresolvable; and recipes that try to read the
host's files, reach the network or write outside their trees fail, each with its error in
the build log."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import msgspec
import pytest

from daemon.avalanche.build import BuildResult, run_build
from daemon.avalanche.config import AvalancheConfig, SandboxMode
from daemon.buildenv import declaration
from daemon.buildenv.build import build
from daemon.buildenv.cache import CachedEnvironment
from daemon.vessel import minisign
from daemon.vessel.config import VesselConfig
from daemon.vessel.environments import EnvironmentStore
from events.payloads import Outcome
from tests.buildenv_cache import cached_environment
from tests.support.envserve import Served, served_environment
from tests.unit.avalanche.support import add_recipe, make_repo, task_for, write_index

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed"),
]


@pytest.fixture(scope="module")
def vessel(debian_environment: CachedEnvironment, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Served]:
    """A vessel state holding the bundled environment, served over HTTP on 127.0.0.1."""
    with served_environment(cached_environment().archive,
                            tmp_path_factory.mktemp("vessel")) as served:
        assert served.digest == debian_environment.digest
        yield served


@pytest.fixture(scope="module")
def builder_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One builder for the module, so the environment is pulled and unpacked once."""
    return tmp_path_factory.mktemp("builder")


def _config(farm: Served, root: Path) -> AvalancheConfig:
    return AvalancheConfig(root=root, jobs=2, timeout_s=300.0, sandbox=SandboxMode.BWRAP,
                           environment=farm.digest, environment_url=farm.url,
                           environment_key=farm.key, hidden=(farm.state,))


def _build(farm: Served, root: Path, repo: Path, commit: str, name: str,
           index_url: str | None = None) -> tuple[BuildResult, str]:
    result = run_build(task_for(repo, commit, name, index_url=index_url), _config(farm, root))
    return result, result.log_path.read_text()


def test_the_task_names_the_environment_and_a_builder_refuses_host_builds(
        vessel: Served, builder_root: Path, tmp_path: Path) -> None:
    repo, commit = make_repo(tmp_path / "recipes")
    hermetic_only = replace(_config(vessel, builder_root), environment=None, host_builds=False)
    refused = run_build(task_for(repo, commit, "libgreet"), hermetic_only)
    assert refused.outcome is Outcome.INFRASTRUCTURE
    assert "does not build on its host's system (not hermetic)" in (refused.reason or "")
    assert refused.environment is None
    named = msgspec.structs.replace(task_for(repo, commit, "libgreet"),
                                    environment=vessel.digest)
    built = run_build(named, hermetic_only)
    assert built.outcome is Outcome.SUCCESS, built.log_path.read_text()
    assert built.environment == vessel.digest
    assert {m.environment for m in built.manifests} == {vessel.digest}


def test_packages_built_on_the_host_say_they_are_not_hermetic(tmp_path: Path) -> None:
    repo, commit = make_repo(tmp_path / "recipes")
    host = run_build(task_for(repo, commit, "libgreet"),
                     AvalancheConfig(root=tmp_path / "builder", jobs=2, timeout_s=300.0))
    assert host.outcome is Outcome.SUCCESS, host.log_path.read_text()
    assert host.environment is None
    assert host.manifests and {m.environment for m in host.manifests} == {None}
    assert "root: the host's system (not hermetic)" in host.log_path.read_text()


def test_examples_build_in_the_environment(vessel: Served, builder_root: Path,
                                           tmp_path: Path) -> None:
    repo, commit = make_repo(tmp_path / "recipes")
    lib, log = _build(vessel, builder_root, repo, commit, "libgreet")
    assert lib.outcome is Outcome.SUCCESS, log
    assert f"root debian-bookworm-c sha256:{vessel.digest}" in log
    assert "build root: debian-bookworm-c + 0 package(s)" in log
    index = write_index(tmp_path / "channel", [lib])
    greet, log = _build(vessel, builder_root, repo, commit, "greet", str(index))
    assert greet.outcome is Outcome.SUCCESS, log
    assert "dependency libgreet-devel-1.0.0-1-1 in the root" in log
    assert "build root: debian-bookworm-c + 2 package(s)" in log
    main = next(m for m in greet.manifests if m.name == "greet")
    assert "soname(libgreet.so.1(x86_64))" in main.depends
    # Provenance: the build and every package it made name the environment.
    assert lib.environment == greet.environment == vessel.digest
    assert {m.environment for m in (*lib.manifests, *greet.manifests)} == {vessel.digest}
    # Nothing is left behind: the root and the tree are removed, the environment stays cached.
    builds = [p for p in (builder_root / "builds").iterdir()]
    assert builds == []
    assert list((builder_root / "cache/environments/envs").iterdir())


def test_a_dependency_only_the_host_has_is_unresolvable(vessel: Served, builder_root: Path,
                                                        tmp_path: Path) -> None:
    assert shutil.which("python3") is not None  # the host has it; the environment does not
    repo, _ = make_repo(tmp_path / "recipes")
    commit = add_recipe(repo, "needs-python", "name: needs-python\nversion: 1.0.0\n"
                        "release: 1\nsummary: s\nlicense: MPL-2.0\nbuilddeps:\n"
                        "    - binary(python3)\nbuild: |\n    python3 -c 'print(1)'\n")
    result, log = _build(vessel, builder_root, repo, commit, "needs-python")
    assert result.outcome is Outcome.FAILED
    assert result.reason is not None and "binary(python3) is unresolvable" in result.reason
    assert "binary(python3) is unresolvable" in log


def _failing(repo: Path, name: str, script: str) -> str:
    body = "\n".join(f"    {line}" for line in script.strip().splitlines())
    return add_recipe(repo, name, f"name: {name}\nversion: 1.0.0\nrelease: 1\nsummary: s\n"
                      f"license: MPL-2.0\nbuild: |\n{body}\n")


def test_host_files_are_not_there(vessel: Served, builder_root: Path, tmp_path: Path) -> None:
    secret = vessel.state / "planted-secret"
    secret.write_text("the builder's secret")
    host_tools = [Path(p) for p in ("/usr/bin/bwrap", "/usr/bin/mosquitto_sub",
                                    "/usr/sbin/rabbitmqctl") if Path(p).exists()]
    assert host_tools, "the host's own tools (present on every test host) are the probe"
    repo, _ = make_repo(tmp_path / "recipes")
    # Present on the host, absent from the environment: none may be visible.
    paths = ["/etc/cairn", str(builder_root), str(secret), str(tmp_path),
             str(Path(sys.executable).with_name("cairn")), *map(str, host_tools)]
    # The host's /root holds this test's interpreter and caches; the environment's /root is
    # its own (closed to the build's user), so a path under it cannot be reached at all.
    under_root = [str(Path(sys.executable).resolve()), "/root/.cache"]
    script = "\n".join(f"if ls -d {p}; then echo LEAKED {p}; fi" for p in paths + under_root)
    commit = _failing(repo, "reads-host", script + "\nexit 3")
    result, log = _build(vessel, builder_root, repo, commit, "reads-host")
    assert result.outcome is Outcome.FAILED and "status 3" in (result.reason or "")
    assert "LEAKED" not in log
    for p in paths:
        assert f"ls: cannot access '{p}': No such file or directory" in log
    for p in under_root:
        assert f"ls: cannot access '{p}': " in log


def test_the_network_is_unreachable(vessel: Served, builder_root: Path, tmp_path: Path) -> None:
    # A port that listens on the host's loopback: the build has a loopback of its own.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        repo, _ = make_repo(tmp_path / "recipes")
        commit = _failing(repo, "uses-network", f"exec 3<>/dev/tcp/127.0.0.1/{port}\n"
                          "echo CONNECTED")
        result, log = _build(vessel, builder_root, repo, commit, "uses-network")
    assert result.outcome is Outcome.FAILED and "CONNECTED" not in log
    assert f"/dev/tcp/127.0.0.1/{port}: Connection refused" in log


@pytest.mark.parametrize("target", ["/usr/bin/planted", "/etc/planted", "/var/planted"])
def test_writing_outside_the_trees_fails(vessel: Served, builder_root: Path, tmp_path: Path,
                                         target: str) -> None:
    repo, _ = make_repo(tmp_path / "recipes")
    commit = _failing(repo, "writes-out", f"echo x > {target}\necho WROTE")
    result, log = _build(vessel, builder_root, repo, commit, "writes-out")
    assert result.outcome is Outcome.FAILED and "WROTE" not in log
    assert f"{target}: Read-only file system" in log
    assert not Path(target).exists()


#: A ``make`` only one builder host has: it installs a file of its own beside the real
#: ``make install``'s, as an extra host package would leak into a build that sees the host.
LEAKY_MAKE = """#!/bin/sh
dest=
for arg; do case "$arg" in DESTDIR=*) dest="${arg#DESTDIR=}";; esac; done
/usr/bin/make "$@" || exit $?
[ -z "$dest" ] || { mkdir -p "$dest/usr/share/host-extra" && : >"$dest/usr/share/host-extra/f"; }
"""


def _shape(result: BuildResult) -> list[tuple[str, list[str], list[str], list[str]]]:
    """What two builds must agree on: each package's files, provides and depends."""
    return sorted((m.name, sorted(f.path for f in m.files), sorted(m.provides),
                   sorted(m.depends)) for m in result.manifests)


def test_builders_with_different_host_packages_make_the_same_packages(
        vessel: Served, builder_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        request: pytest.FixtureRequest) -> None:
    repo, commit = make_repo(tmp_path / "recipes")
    plain = run_build(task_for(repo, commit, "libgreet"), _config(vessel, builder_root))
    assert plain.outcome is Outcome.SUCCESS, plain.log_path.read_text()
    # The second builder's host has more: its own make first on its PATH (where any build
    # user can run it: not under /tmp, which each sandbox replaces, nor a 0700 home).
    extra = Path("/var/tmp") / f"cairn-test-host-extra-{uuid.uuid4().hex[:8]}"
    extra.mkdir(mode=0o755)
    request.addfinalizer(lambda: shutil.rmtree(extra, ignore_errors=True))
    (extra / "make").write_text(LEAKY_MAKE)
    (extra / "make").chmod(0o755)
    monkeypatch.setenv("PATH", f"{extra}:{os.environ['PATH']}")
    other = run_build(task_for(repo, commit, "libgreet"),
                      _config(vessel, tmp_path / "other-builder"))
    assert other.outcome is Outcome.SUCCESS, other.log_path.read_text()
    assert _shape(other) == _shape(plain)
    assert other.environment == plain.environment == vessel.digest
    # The control: on that host's own system the extra make is used, and it shows.
    host = run_build(task_for(repo, commit, "libgreet"),
                     AvalancheConfig(root=tmp_path / "host-builder", jobs=2, timeout_s=300.0))
    assert host.outcome is Outcome.SUCCESS, host.log_path.read_text()
    assert "usr/share/host-extra/f" in [f.path for m in host.manifests for f in m.files]


def test_an_environment_layered_with_channel_packages_builds_what_needs_them(
        vessel: Served, builder_root: Path, tmp_path: Path) -> None:
    repo, commit = make_repo(tmp_path / "recipes")
    lib = run_build(task_for(repo, commit, "libgreet"), _config(vessel, builder_root))
    assert lib.outcome is Outcome.SUCCESS, lib.log_path.read_text()
    index = write_index(tmp_path / "channel", [lib])
    declared = tmp_path / "layered.toml"
    declared.write_text(f'name = "debian-greet"\nparent = "{cached_environment().archive}"\n'
                        f'[layer]\nindex = "{index}"\npackages = ["pkgconfig(libgreet)"]\n')
    built = build(declaration.load(declared), tmp_path / "env", cache_dir=tmp_path / "dl")
    made = built.record.manifest
    assert {"pkgconfig(libgreet)", "binary(make)"} <= set(made.provides)
    assert made.base is not None and made.layer is not None
    layout = VesselConfig(state_dir=vessel.state).layout
    EnvironmentStore(layout, minisign.load_or_create_key(layout.secret_key)).push(built.archive)
    # A builder pulls it by digest, and greet finds libgreet in it: no channel needed.
    layered = replace(_config(vessel, builder_root), environment=built.record.digest)
    greet = run_build(task_for(repo, commit, "greet"), layered)
    log = greet.log_path.read_text()
    assert greet.outcome is Outcome.SUCCESS, log
    assert "dependency pkgconfig(libgreet) is provided by the build environment" in log
    assert greet.environment == built.record.digest != vessel.digest
