"""The one reader of stone.yaml: every key as boulder reads it, values as their authors wrote
them, and hostile files refused quickly with the file and line."""

from __future__ import annotations

import time

import pytest

from daemon.formats.stone import (
    MAX_RECIPE_BYTES,
    MAX_RELEASE,
    PathKind,
    RecipeError,
    Toolchain,
    Tuning,
    parse_stone,
)
from daemon.formats.upstreams import GitUpstream, PlainUpstream, layout_dir, work_subdir

SHA = "a" * 64
GOOD = f"""#
# comment header
#
name        : acl
version     : 2.10
release     : 4
homepage    : https://example.org/acl
upstreams   :
    - https://example.org/acl-2.10.tar.xz : {SHA}
    - git|https://example.org/acl.git:
        ref: v2.10
        clonedir: acl-git
summary     : Access control list utilities
description : |
    Commands
license     :
    - GPL-2.0-or-later
emul32      : yes
builddeps   :
    - pkgconfig32(libattr)
    - binary(m4)
checkdeps   :
    - python
rundeps     :
    - attr
architectures: [native]
toolchain   : gnu
environment : |
    export X=1
setup       : |
    %configure
build       : |
    %make
install     : |
    %make_install
tuning      :
    - lto
    - icf: all
    - fortify: false
    - common: True
profiles    :
    - emul32:
        setup: |
            %configure --disable-docs
packages    :
    - "%(name)-docs":
        summary: docs
        paths:
            - /usr/share/doc
            - /usr/bin/x: exe
        rundeps:
            - "%(name)"
tune        :
    - lto
""".encode()


def test_every_key_is_read() -> None:
    recipe = parse_stone(GOOD, "a/acl/stone.yaml")
    assert (recipe.name, recipe.version, recipe.release) == ("acl", "2.10", 4)
    assert recipe.builddeps == ("pkgconfig32(libattr)", "binary(m4)")
    assert recipe.build_deps == ("pkgconfig32(libattr)", "binary(m4)", "python")
    assert recipe.rundeps == ("attr",) and recipe.license == ("GPL-2.0-or-later",)
    plain, git = recipe.upstreams
    assert isinstance(plain, PlainUpstream) and plain.hash == SHA and plain.stripdirs == 1
    assert plain.name == "acl-2.10.tar.xz" and plain.unpacked
    assert isinstance(git, GitUpstream) and git.url == "https://example.org/acl.git"
    assert git.ref == "v2.10" and not git.pinned and git.name == "acl.git"
    assert layout_dir(git) == "acl-git" and work_subdir(recipe.upstreams) == "acl-2.10.tar.xz"
    assert recipe.step("install") == "%make_install\n" and recipe.step("check") is None
    assert recipe.steps.environment == "export X=1\n"
    assert recipe.emul32 and recipe.toolchain is Toolchain.GNU and recipe.strip
    assert recipe.builds_for("x86_64")
    assert recipe.tuning == (Tuning("lto"), Tuning("icf", "all"), Tuning("fortify", False),
                             Tuning("common", True))
    emul32 = recipe.profile("emul32")
    assert emul32 is not None and emul32.setup == "%configure --disable-docs\n"
    assert emul32.build is None
    (docs,) = recipe.packages
    assert docs.name == "acl-docs" and docs.rundeps == ("acl",)
    assert [(r.path, r.kind) for r in docs.paths] == [("/usr/share/doc", PathKind.ANY),
                                                      ("/usr/bin/x", PathKind.EXE)]
    assert recipe.unknown == (("tune", 53),)


@pytest.mark.parametrize("written", ["1.10", "0.8", "47.0", "3.003", "1.0e3", "010", "0x10",
                                     "2024.10", ".5", "1_000"])
def test_the_version_is_the_text_the_author_wrote(written: str) -> None:
    recipe = parse_stone(f"name: x\nversion: {written}\nrelease: 1\n".encode())
    assert recipe.version == written


@pytest.mark.parametrize("spelling", ["yes", "Yes", "YES", "y", "true", "True", "on", "ON"])
def test_yes_spellings(spelling: str) -> None:
    recipe = parse_stone(f"name: x\nversion: 1\nrelease: 1\nnetworking: {spelling}\n".encode())
    assert recipe.networking


@pytest.mark.parametrize("spelling", ["no", "No", "n", "false", "False", "off", "OFF"])
def test_no_spellings(spelling: str) -> None:
    recipe = parse_stone(f"name: x\nversion: 1\nrelease: 1\nstrip: {spelling}\n".encode())
    assert not recipe.strip


def test_yaml_error_reports_file_and_line() -> None:
    bad = GOOD.replace(b"release     : 4\n", b"release     : 4\n  : : [\n")
    with pytest.raises(RecipeError) as caught:
        parse_stone(bad, "a/acl/stone.yaml")
    assert caught.value.file == "a/acl/stone.yaml"
    assert caught.value.line in (7, 8)
    assert "invalid YAML" in caught.value.message


def test_missing_field_points_at_the_mapping() -> None:
    with pytest.raises(RecipeError) as caught:
        parse_stone(GOOD.replace(b"name        : acl\n", b""))
    assert caught.value.line == 4  # the mapping starts after the comment header
    assert "name" in caught.value.message


@pytest.mark.parametrize("release", ["four", "0", "-1", "1.5", "[1]", str(MAX_RELEASE + 1),
                                     "9223372036854775808", "1" * 4000])
def test_a_release_out_of_bounds_points_at_its_line(release: str) -> None:
    with pytest.raises(RecipeError, match="'release' must be a whole number") as caught:
        parse_stone(GOOD.replace(b"release     : 4", f"release     : {release}".encode()))
    assert caught.value.line == 6
    assert len(caught.value.message) < 200


def test_not_a_mapping_is_line_one() -> None:
    with pytest.raises(RecipeError) as caught:
        parse_stone(b"- just\n- a list\n")
    assert caught.value.line == 1


def test_an_alias_bomb_is_refused_at_once() -> None:
    """502 bytes that expand to a billion values: no aliases, so nothing expands."""
    lines = ["name: x", "version: 1", "release: 1", 'a: &a ["lol","lol","lol","lol","lol"]']
    for level in range(1, 10):
        prev = chr(ord("a") + level - 1)
        name = chr(ord("a") + level)
        lines.append(f"{name}: &{name} [{','.join(['*' + prev] * 9)}]")
    started = time.monotonic()
    with pytest.raises(RecipeError, match=r"anchors \(&a\) are not allowed") as caught:
        parse_stone(("\n".join(lines) + "\n").encode())
    assert caught.value.line == 4
    assert time.monotonic() - started < 5


def test_an_alias_alone_is_refused() -> None:
    with pytest.raises(RecipeError, match="aliases"):
        parse_stone(b"name: x\nversion: 1\nrelease: 1\nsummary: *nothing\n")


def test_a_huge_recipe_is_refused_before_it_is_parsed() -> None:
    data = b"name: x\nversion: 1\nrelease: 1\ndescription: |\n" + b"  " + b"y" * MAX_RECIPE_BYTES
    with pytest.raises(RecipeError, match="a recipe may have at most"):
        parse_stone(data)


def test_deep_nesting_and_too_many_values_are_refused() -> None:
    with pytest.raises(RecipeError, match="nested deeper"):
        parse_stone(b"name: x\nversion: 1\nrelease: 1\nx: " + b"[" * 200 + b"]" * 200 + b"\n")
    many = b"name: x\nversion: 1\nrelease: 1\nx: [" + b"1," * 60_000 + b"1]\n"
    with pytest.raises(RecipeError, match="more than 50000 values"):
        parse_stone(many)


def test_a_key_twice_is_refused_with_its_line() -> None:
    with pytest.raises(RecipeError, match="'release' appears twice") as caught:
        parse_stone(b"name: x\nversion: 1\nrelease: 1\nrelease: 2\n")
    assert caught.value.line == 4


def test_a_recipe_that_is_not_utf8_names_the_byte() -> None:
    with pytest.raises(RecipeError, match=r"not UTF-8 text \(byte 9") as caught:
        parse_stone(b"name: caf\xe9\nversion: 1\nrelease: 1\n", "repo:cafe/stone.yaml")
    assert str(caught.value).startswith("repo:cafe/stone.yaml:1:")


@pytest.mark.parametrize(("field", "value", "what"), [
    ("name", "../../../x", "the recipe's name"), ("name", "a b", "the recipe's name"),
    ("version", "1.0/../x", "the recipe's version"), ("version", "[1]", "must be text"),
])
def test_unsafe_names_and_versions(field: str, value: str, what: str) -> None:
    doc = {"name": "x", "version": "1", "release": "1", field: value}
    text = "".join(f"{k}: {v}\n" for k, v in doc.items())
    with pytest.raises(RecipeError, match=what):
        parse_stone(text.encode())


@pytest.mark.parametrize(("entry", "message"), [
    ("- https://x/y.tar.gz : nothex", "no valid sha256"),
    ("- https://x/y.tar.gz", "is not 'URL : sha256'"),
    ("- git|https://x/y.git:\n        hash: " + SHA, "takes 'ref'"),
    ("- https://x/y.tar.gz:\n        ref: abc", "need a 'git|' URL"),
    ("- https://x/:\n        hash: " + SHA, "set 'rename'"),
    (f"- https://x/y.tar.gz:\n        hash: {SHA}\n        stripdirs: many", "stripdirs"),
])
def test_bad_upstreams_are_named(entry: str, message: str) -> None:
    with pytest.raises(RecipeError, match=message) as caught:
        parse_stone(f"name: x\nversion: 1\nrelease: 1\nupstreams:\n    {entry}\n".encode())
    assert caught.value.line == 4


def test_upstream_options() -> None:
    recipe = parse_stone(f"""name: x
version: 1
release: 1
upstreams:
    - https://x/NVIDIA.run:
        hash: {SHA.upper()}
        unpack: false
        extract: false
    - https://x/cli.tar.gz:
        hash: {SHA}
        stripdirs: 2
        unpackdir: "%(name)-%(version)/cli"
    - git|https://x/y.git : {"b" * 40}
""".encode())
    run, cli, git = recipe.upstreams
    assert isinstance(run, PlainUpstream) and not run.unpack and run.unknown == ("extract",)
    assert run.hash == SHA and layout_dir(run) is None
    assert isinstance(cli, PlainUpstream) and cli.stripdirs == 2
    assert layout_dir(cli) == "%(name)-%(version)/cli"
    assert isinstance(git, GitUpstream) and git.pinned
    assert work_subdir(recipe.upstreams) == "%(name)-%(version)/cli"


@pytest.mark.parametrize(("extra", "message"), [
    ("toolchain: msvc", "must be llvm or gnu"),
    ("emul32: maybe", "must be yes or no"),
    ("packages:\n  - ../x: {}", "not a valid name"),
    ("packages:\n  - x: [1]", "must be a mapping"),
    ("profiles:\n  - emul32:\n      builddeps: [x]", "cannot have: builddeps"),
    ("tuning:\n  - lto: [full]", "setting must be"),
    ("build: [make]", "'build' must be a script"),
    ("paths:\n  - /usr/bin/x: binary", "kind must be one of"),
])
def test_wrong_shapes_are_named(extra: str, message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        parse_stone(f"name: x\nversion: 1\nrelease: 1\n{extra}\n".encode())


def test_empty_values_and_null_environment() -> None:
    recipe = parse_stone(b"name: x\nversion: 1\nrelease: 1\ncheck:\nenvironment: (null)\n"
                         b"summary: ~\nrundeps: []\n")
    assert recipe.step("check") is None and recipe.steps.environment is None
    assert recipe.summary == "" and recipe.rundeps == ()
