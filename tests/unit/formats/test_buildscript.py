"""boulder's macros expand from their tables; tuning, toolchain, targets and profiles make
the scripts a builder runs; every key gets a verdict."""

from __future__ import annotations

import pytest

from daemon.formats import buildscript, keys, macros
from daemon.formats.buildscript import BuildPaths, Expander, MacroError, plan
from daemon.formats.stone import parse_stone

PATHS = BuildPaths("/build/work", "/build/install", "/build/sources", "/build/recipe/pkg")


def _recipe(extra: str = "") -> bytes:
    return f"name: demo\nversion: 1.10\nrelease: 3\n{extra}".encode()


def _scripts(extra: str, toolchain: str | None = "gnu") -> dict[tuple[str, str], str]:
    built = plan(parse_stone(_recipe(extra)), arch="x86_64", jobs=4, paths=PATHS,
                 toolchain=toolchain)  # fmt: skip
    return {(s.target, s.step): s.text for s in built.scripts}


def test_definitions_actions_and_escapes_expand() -> None:
    expander = Expander({"hello": "echo %(greeting)\n", "twice": "%hello; %hello"},
                        {"greeting": "hi %(who)", "who": "you"})  # fmt: skip
    assert expander.expand("%twice").text == "echo hi you; echo hi you"
    assert expander.expand("export APP_ARGS=%%U").text == "export APP_ARGS=%U"
    done = expander.expand("printf '%s' x; %hello")
    assert done.text == "printf '%s' x; echo hi you" and done.unknown == ("%s",)
    with pytest.raises(MacroError, match=r"unknown macro %\(nosuch\)"):
        expander.expand("%(nosuch)")
    with pytest.raises(MacroError, match="nest deeper"):
        Expander({"loop": "%loop"}, {}).expand("%loop")


def test_every_family_is_a_table_and_no_name_is_defined_twice() -> None:
    tables = macros.tables()
    assert {"configure", "cmake_kf6", "cargo_install", "tmpfiles", "pyproject_build",
            "gem_install", "qml_cache_qt6", "bolt_opt", "ccache_zero"} <= set(tables.actions)
    assert tables.family["%cargo_fetch"] == "cargo"
    assert tables.family["%(tmpfilesdir)"] == "systemd"


def test_autotools_cmake_and_paths_are_boulders() -> None:
    scripts = _scripts("setup: |\n    %configure\n    %cmake\nbuild: |\n    %make\n"
                       "install: |\n    %make_install\n")
    setup = scripts[("x86_64", "setup")]
    assert "/usr/bin/dash ./configure --prefix=\"/usr\"" in setup
    assert '--build="x86_64-serpent-linux"' in setup and '--libdir="/usr/lib"' in setup
    assert '-DCMAKE_INSTALL_LIBDIR="lib"' in setup and "-G Ninja" in setup
    assert scripts[("x86_64", "install")].rstrip().endswith(
        'make -j "4" install DESTDIR="/build/install"')
    assert 'cd "/build/work"' in setup and 'version="1.10"' in setup


def test_tuning_sets_the_flags_for_the_toolchain() -> None:
    default = _scripts("build: make\n")[("x86_64", "build")]
    assert 'CC="gcc"' in default and "-O2" in default and "-flto=4" in default
    assert "-march=x86-64-v2 -mtune=ivybridge" in default
    tuned = _scripts("tuning:\n  - optimize: speed\n  - lto: false\n  - harden: false\n"
                     "build: make\n")[("x86_64", "build")]  # fmt: skip
    assert "-O3" in tuned and "-O2 " not in tuned and "-flto" not in tuned
    assert "-fno-stack-protector" in tuned
    llvm = _scripts("build: make\n", toolchain="llvm")[("x86_64", "build")]
    assert 'CC="clang"' in llvm and "-flto=thin" in llvm and "-fuse-ld=lld" in llvm
    assert 'AR="llvm-ar"' in llvm and "-Wl,--icf=safe" in llvm


def test_an_unknown_tuning_group_or_option_is_named() -> None:
    with pytest.raises(MacroError, match="unknown tuning group 'turbo'"):
        _scripts("tuning:\n  - turbo\nbuild: make\n")
    with pytest.raises(MacroError, match="tuning group 'lto' has no option 'medium'"):
        _scripts("tuning:\n  - lto: medium\nbuild: make\n")


def test_emul32_builds_first_in_its_own_copy_with_its_profile() -> None:
    scripts = _scripts("emul32: yes\nsetup: |\n    %cmake\nbuild: |\n    %cmake_build\n"
                       "profiles:\n  - emul32:\n      setup: |\n          %cmake -DX=32\n")
    assert list(scripts) == [("emul32/x86_64", "setup"), ("emul32/x86_64", "build"),
                             ("x86_64", "setup"), ("x86_64", "build")]
    setup32 = scripts[("emul32/x86_64", "setup")]
    assert 'CC="gcc -m32"' in setup32 and '-DCMAKE_INSTALL_LIBDIR="lib32"' in setup32
    assert "-DX=32" in setup32 and 'cd "/build/work-emul32"' in setup32
    assert "-march=i686" in setup32
    assert "-DX=32" not in scripts[("x86_64", "setup")]
    assert "cmake --build" in scripts[("emul32/x86_64", "build")]  # the top level's


def test_tmpfiles_and_sysusers_go_where_systemd_reads_them() -> None:
    install = _scripts("install: |\n    %tmpfiles d /run/demo 0755 root root -\n"
                       "    %sysusers u demo - \"Demo\"\n")[("x86_64", "install")]
    assert ">> /build/install/usr/lib/tmpfiles.d/demo.conf" in install
    assert ">> /build/install/usr/lib/sysusers.d/demo.conf" in install
    assert "create_tmpfiles d /run/demo 0755 root root -" in install


def test_cargo_installs_from_the_target_directory() -> None:
    install = _scripts("install: |\n    %cargo_install\n")[("x86_64", "install")]
    assert "install -Dm00755 -t /build/install/usr/bin " \
           "target/x86_64-unknown-linux-gnu/release/demo" in install


def test_every_key_gets_a_verdict() -> None:
    recipe = parse_stone(_recipe("tune:\n  - lto\nworkload: ./bench\nnetworking: yes\n"
                                 "strip: false\ntoolchain: gnu\nbuild: make\n"))
    verdicts = {u.key: u.verdict for u in keys.review(recipe)}
    assert verdicts["tune"] is keys.Verdict.IGNORED
    assert verdicts["workload"] is keys.Verdict.REFUSED
    assert verdicts["networking"] is keys.Verdict.AT_BUILD
    assert verdicts["toolchain"] is keys.Verdict.AT_BUILD
    assert verdicts["strip"] is keys.Verdict.APPLIED
    assert verdicts["build"] is keys.Verdict.APPLIED
    assert [u.key for u in keys.refusals(parse_stone(_recipe("strip: yes\n")))] == ["strip"]


def test_the_target_workdir_rule() -> None:
    assert buildscript.target_workdir("/b/work", "x86_64", "x86_64") == "/b/work"
    assert buildscript.target_workdir("/b/work", "emul32/x86_64", "x86_64") == "/b/work-emul32"
