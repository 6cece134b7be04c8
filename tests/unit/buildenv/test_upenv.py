"""How ``cairn up`` chooses its build environment: an archive as given, a digest of one made
here, the bundled declaration from the cache; and, when one cannot be made, the reason it
gives (what to install or change) and the fallback to the host for the default only."""

from __future__ import annotations

import io
import os
import socket
from pathlib import Path

import pytest
from rich.console import Console

from daemon.buildenv import declaration
from daemon.buildenv.manifest import encode
from daemon.commands import upenv
from events.errors import CairnError
from tests.unit.buildenv.support import make_tree, pack_tree

DECL = {"name": "tiny", "base": {"suite": "bookworm", "mirror": "http://127.0.0.1:9/debian"}}


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CAIRN_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _console(_tmp_path: Path) -> Console:
    return Console(file=io.StringIO())


def test_an_archive_is_used_as_it_is_and_found_again_by_digest(tmp_path: Path,
                                                               cache: Path) -> None:
    record, archive = pack_tree(make_tree(tmp_path / "root"), cache / "environments" / "built")
    chosen = upenv.choose(str(archive), _console(tmp_path))
    assert chosen.environment is not None and chosen.environment.record == record
    by_digest = upenv.resolve(f"sha256:{record.digest[:12]}", _console(tmp_path))
    assert by_digest.archive == archive and by_digest.digest == record.digest


def test_a_named_environment_that_cannot_be_had_is_an_error(tmp_path: Path,
                                                            cache: Path) -> None:
    with pytest.raises(CairnError, match=r"not a declaration .* or the digest of an environment "
                                         r"made here"):
        upenv.choose("0123456789abcdef", _console(tmp_path))
    with pytest.raises(CairnError, match="there is no environment archive"):
        upenv.choose(str(tmp_path / "gone.tar.zst"), _console(tmp_path))


def test_a_cached_declaration_is_reused_without_making_anything(
        tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "tiny.toml"
    path.write_text('name = "tiny"\n[base]\nsuite = "bookworm"\n'
                    'mirror = "http://127.0.0.1:9/debian"\n')
    made = cache / "environments" / "up" / upenv.cache_key(declaration.load(path))
    record, archive = pack_tree(make_tree(tmp_path / "root"), made)
    (made / f"{record.digest}.json").write_bytes(encode(record))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no mmdebstrap, no bwrap
    env = upenv.choose(str(path), _console(tmp_path)).environment
    assert env is not None and env.archive == archive and env.record == record


def test_without_mmdebstrap_it_says_what_to_install(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "bwrap").symlink_to("/bin/true")
    monkeypatch.setenv("PATH", str(bin_dir))
    decl = declaration.parse(DECL, origin="test")
    with pytest.raises(upenv.Unavailable, match=r"mmdebstrap is not installed.*apt-get "
                                                r"install mmdebstrap"):
        upenv.preflight(decl)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(upenv.Unavailable, match="apt-get install bubblewrap"):
        upenv.preflight(decl)


def test_the_default_falls_back_to_the_host_saying_why(
        tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    chosen = upenv.choose(None, _console(tmp_path))
    assert chosen.environment is None and "apt-get install bubblewrap" in chosen.why


def test_an_unreachable_mirror_is_named() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(upenv.Unavailable, match=f"cannot reach the Debian mirror "
                                                f"http://127.0.0.1:{port}/debian"):
        upenv.probe_mirror(f"deb [signed-by=/k.gpg] http://127.0.0.1:{port}/debian bookworm "
                           "main", "bookworm", timeout=5)


def test_without_root_user_namespaces_and_subordinate_ids_are_needed(tmp_path: Path) -> None:
    etc, proc = tmp_path / "etc", tmp_path / "proc"
    (proc / "kernel").mkdir(parents=True)
    etc.mkdir()
    (proc / "kernel" / "unprivileged_userns_clone").write_text("0\n")
    problem = upenv.unprivileged_problem(etc, proc)
    assert problem is not None and "user namespaces are disabled" in problem
    assert "sysctl -w kernel.unprivileged_userns_clone=1" in problem
    (proc / "kernel" / "unprivileged_userns_clone").write_text("1\n")
    if upenv.shutil.which("newuidmap") is None:
        problem = upenv.unprivileged_problem(etc, proc)
        assert problem is not None and "apt-get install uidmap" in problem
        return
    problem = upenv.unprivileged_problem(etc, proc)
    assert problem is not None and "no subordinate ids" in problem and "usermod" in problem
    user = upenv.pwd.getpwuid(os.geteuid()).pw_name
    for name in ("subuid", "subgid"):
        (etc / name).write_text(f"{user}:100000:65536\n")
    assert upenv.unprivileged_problem(etc, proc) is None
