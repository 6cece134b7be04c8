"""The host's apt sources, one-line and deb822, become mmdebstrap's mirror lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.buildenv import aptsources, bootstrap, declaration
from daemon.buildenv.errors import BuildEnvError


def _etc(tmp_path: Path) -> Path:
    etc = tmp_path / "apt"
    (etc / "sources.list.d").mkdir(parents=True)
    (etc / "sources.list").write_text(
        "# a comment\n"
        "deb [arch=amd64 signed-by=/usr/share/keyrings/a.gpg] http://mirror.example/debian "
        "bookworm main contrib # trailing\n"
        "deb-src http://mirror.example/debian bookworm main\n")
    (etc / "sources.list.d" / "debian.sources").write_text(
        "Types: deb deb-src\n"
        "# http://snapshot.example/archive/debian/2025\n"
        "URIs: http://deb.example/debian\n"
        "Suites: bookworm bookworm-updates\n"
        "Components: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        "\n"
        "Types: deb\n"
        "URIs: http://security.example/debian-security\n"
        "Suites: bookworm-security\n"
        "Components: main\n"
        "Enabled: no\n")
    (etc / "sources.list.d" / "old.list.disabled").write_text(
        "deb http://disabled.example/ bookworm main\n")
    return etc


def test_host_sources_are_read_in_apt_order(tmp_path: Path) -> None:
    sources = aptsources.read_host_sources(_etc(tmp_path))
    assert [(s.uri, s.suite) for s in sources] == [
        ("http://mirror.example/debian", "bookworm"),
        ("http://deb.example/debian", "bookworm"),
        ("http://deb.example/debian", "bookworm-updates"),
    ]
    assert sources[0].signed_by == "/usr/share/keyrings/a.gpg"
    assert sources[0].components == ("main", "contrib")


def test_mirror_lines_for_the_declared_suites(tmp_path: Path) -> None:
    decl = declaration.parse({"name": "x", "base": {"suite": "bookworm",
                                                    "suites": ["bookworm-updates"]}},
                             origin="t")
    assert decl.base is not None
    lines = bootstrap.sources_for(decl.base, _etc(tmp_path))
    assert lines == [
        "deb [signed-by=/usr/share/keyrings/a.gpg] http://mirror.example/debian bookworm "
        "main contrib",
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
        "http://deb.example/debian bookworm main",
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
        "http://deb.example/debian bookworm-updates main",
    ]


def test_a_suite_the_host_lacks_is_named(tmp_path: Path) -> None:
    decl = declaration.parse({"name": "x", "base": {"suite": "trixie"}}, origin="t")
    assert decl.base is not None
    with pytest.raises(BuildEnvError, match=r"no apt source for suite 'trixie'.*bookworm"):
        bootstrap.sources_for(decl.base, _etc(tmp_path))


def test_declared_mirror_wins_over_the_host(tmp_path: Path) -> None:
    decl = declaration.parse({"name": "x", "base": {"suite": "bookworm",
                                                    "mirror": "http://m.example/debian",
                                                    "components": ["main", "non-free"]}},
                             origin="t")
    assert decl.base is not None
    assert bootstrap.sources_for(decl.base, _etc(tmp_path)) == [
        "deb http://m.example/debian bookworm main non-free"]


def test_mmdebstrap_command_is_reproducible_and_leaks_nothing(tmp_path: Path) -> None:
    decl = declaration.parse({"name": "x", "base": {
        "suite": "bookworm", "packages": ["gcc", "make"], "exclude": ["/usr/share/doc/*"],
        "keep": ["/usr/share/doc/*/copyright"]}}, origin="t")
    argv = bootstrap.command(decl, tmp_path / "root", ["deb http://m bookworm main"],
                             "mmdebstrap")
    assert "--variant=minbase" in argv and "--include=gcc,make" in argv
    assert "--dpkgopt=path-exclude=/usr/share/doc/*" in argv
    assert "--dpkgopt=path-include=/usr/share/doc/*/copyright" in argv
    hooks = [a for a in argv if a.startswith("--customize-hook=")]
    assert any("etc/hostname" in h for h in hooks) and any("resolv.conf" in h for h in hooks)
    assert argv[-3:] == ["bookworm", str(tmp_path / "root"), "deb http://m bookworm main"]
