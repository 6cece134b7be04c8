"""Resolving build dependencies against an index is a pure function."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.avalanche.deps import environment, resolve
from daemon.avalanche.errors import DependencyError
from daemon.package import Index, IndexEntry


def _entry(name: str, provides: list[str], depends: list[str] = [], release: int = 1) -> IndexEntry:  # noqa: B006
    return IndexEntry(name=name, version="1", release=release, build_release=1, arch="x86_64",
                      source=name, summary="", depends=depends, provides=provides,
                      uri=f"pool/{name}.tar.zst", sha256="0" * 64, size=1)  # fmt: skip


INDEX = Index(channel="volatile", arch="x86_64", generation=3, created="now", packages=[
    _entry("liba", ["soname(liba.so.1(x86_64))"]),
    _entry("liba-devel", ["pkgconfig(a)"], ["liba"]),
    _entry("libb", ["soname(libb.so.1(x86_64))"], ["soname(liba.so.1(x86_64))",
                                                  "soname(libc.so.6(x86_64))"]),
    _entry("libb-devel", ["pkgconfig(b)"], ["libb"]),
    _entry("tool", ["binary(tool)"], release=1),
    _entry("tool", ["binary(tool)"], release=2),
])  # fmt: skip


def test_transitive_and_host_provided() -> None:
    result = resolve(INDEX, ["pkgconfig(b)"], "x86_64")
    assert [p.name for p in result.packages] == ["liba", "libb", "libb-devel"]
    assert result.from_host == ("soname(libc.so.6(x86_64))",)


def test_highest_release_wins_and_names_match() -> None:
    result = resolve(INDEX, ["binary(tool)", "liba-devel"], "x86_64")
    assert {(p.name, p.release) for p in result.packages} == {
        ("tool", 2), ("liba-devel", 1), ("liba", 1)}  # fmt: skip


def test_missing_dependency_is_named() -> None:
    with pytest.raises(DependencyError, match=r"pkgconfig\(nope\), binary\(gone\)"):
        resolve(INDEX, ["pkgconfig(a)", "pkgconfig(nope)", "binary(gone)"], "x86_64")


def test_environment_points_into_deps(tmp_path: Path) -> None:
    env = environment(tmp_path, {"PATH": "/usr/bin"})
    assert env["PATH"].startswith(f"{tmp_path}/usr/bin:") and env["PATH"].endswith(":/usr/bin")
    assert f"{tmp_path}/usr/lib/pkgconfig" in env["PKG_CONFIG_PATH"].split(":")
    assert env["CPATH"] == f"{tmp_path}/usr/include"
    for key in ("LIBRARY_PATH", "LD_LIBRARY_PATH"):
        assert env[key].split(":")[0] == f"{tmp_path}/usr/lib"


ENV_PROVIDES = frozenset({"soname(libc.so.6(x86_64))", "binary(gcc)", "name(gcc-12)",
                          "pkgconfig(zlib)"})


def test_with_an_environment_needs_resolve_against_it_never_the_host() -> None:
    result = resolve(INDEX, ["pkgconfig(b)", "binary(gcc)", "gcc-12"], "x86_64", ENV_PROVIDES)
    assert [p.name for p in result.packages] == ["liba", "libb", "libb-devel"]
    assert result.from_host == ()
    assert result.from_environment == ("binary(gcc)", "gcc-12", "soname(libc.so.6(x86_64))")


def test_with_an_environment_the_channel_wins_where_both_provide() -> None:
    result = resolve(INDEX, ["pkgconfig(a)"], "x86_64", ENV_PROVIDES | {"pkgconfig(a)"})
    assert [p.name for p in result.packages] == ["liba", "liba-devel"]


def test_with_an_environment_what_neither_provides_is_unresolvable() -> None:
    with pytest.raises(DependencyError, match=r"binary\(cmake\) is unresolvable.*environment"):
        resolve(INDEX, ["binary(cmake)"], "x86_64", ENV_PROVIDES)
    # A transitive need (libb needs libc) the environment lacks is named too.
    with pytest.raises(DependencyError, match=r"soname\(libc\.so\.6\(x86_64\)\).*unresolvable"):
        resolve(INDEX, ["pkgconfig(b)"], "x86_64", frozenset({"binary(gcc)"}))
