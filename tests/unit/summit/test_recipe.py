from __future__ import annotations

import pytest

from daemon.summit.planning.manifest import normalise, parse_manifest
from daemon.summit.planning.recipe import RecipeError, parse_stone
from daemon.summit.planning.tree import load_entry

GOOD = b"""#
# comment header
#
name        : acl
version     : 2.10
release     : 4
homepage    : https://example.org/acl
upstreams   :
    - https://example.org/acl-2.10.tar.xz : 97203a72
    - git|https://example.org/acl.git:
        ref: v2.10
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
setup       : |
    %configure
build       : |
    %make
install     : |
    %make_install
tuning      :
    - lto
"""


def test_parses_every_field_and_keeps_the_version_as_written() -> None:
    recipe = parse_stone(GOOD, "a/acl")
    assert (recipe.name, recipe.version, recipe.release) == ("acl", "2.10", 4)
    assert recipe.builddeps == ("pkgconfig32(libattr)", "binary(m4)")
    assert recipe.build_deps == ("pkgconfig32(libattr)", "binary(m4)", "python")
    assert recipe.rundeps == ("attr",)
    assert recipe.license == ("GPL-2.0-or-later",)
    assert recipe.upstreams[0].url == "https://example.org/acl-2.10.tar.xz"
    assert recipe.upstreams[0].hash == "97203a72"
    assert recipe.upstreams[1].hash == "v2.10"
    assert recipe.step("install") == "%make_install\n"
    assert recipe.emul32 and recipe.toolchain == "gnu"
    assert recipe.builds_for("x86_64")
    assert dict(recipe.extra)["tuning"] == "['lto']"
    assert recipe.file == "a/acl/stone.yaml"


def test_yaml_error_reports_file_and_line() -> None:
    bad = GOOD.replace(b"release     : 4\n", b"release     : 4\n  : : [\n")
    with pytest.raises(RecipeError) as caught:
        parse_stone(bad, "a/acl")
    assert caught.value.file == "a/acl/stone.yaml"
    assert caught.value.line in (7, 8)
    assert "invalid YAML" in caught.value.message


def test_missing_field_points_at_the_mapping() -> None:
    with pytest.raises(RecipeError) as caught:
        parse_stone(GOOD.replace(b"name        : acl\n", b""), "a/acl")
    assert caught.value.line == 4  # the mapping starts after the comment header
    assert "name" in caught.value.message


def test_bad_release_points_at_its_line() -> None:
    with pytest.raises(RecipeError) as caught:
        parse_stone(GOOD.replace(b"release     : 4", b"release     : four"), "a/acl")
    assert caught.value.line == 6


def test_not_a_mapping_is_line_one() -> None:
    with pytest.raises(RecipeError) as caught:
        parse_stone(b"- just\n- a list\n", "x")
    assert caught.value.line == 1


def test_manifest_with_comments_gives_providers() -> None:
    data = b"""/** header */
{
  // a line comment
  "manifest-version": "0.2",
  "packages": {
    "acl": {"name": "acl", "provides": ["binary(chacl)", "name(acl-doc)"],
            "depends": ["soname(libc.so.6(x86_64))"], "build-depends": ["m4"],
            "files": ["/usr/bin/chacl", "http://not//a/comment"]},
    "acl-devel": {"name": "acl-devel", "provides": ["pkgconfig(libacl)"]}
  }
}"""
    parsed = parse_manifest(data, "a/acl/manifest.x86_64.jsonc")
    assert parsed.providers() == {"acl", "acl-devel", "acl-doc", "binary(chacl)",
                                  "pkgconfig(libacl)"}
    assert parsed.packages[0].files == ("/usr/bin/chacl", "http://not//a/comment")
    assert normalise("name(x)") == "x" and normalise("soname(x)") == "soname(x)"


def test_broken_manifest_reports_line_and_keeps_the_recipe() -> None:
    data = b'/* c */\n{\n "packages": {\n  "a": {"name": "a",}\n }\n}\n'
    got = load_entry("a/acl", GOOD, data, "x86_64")
    assert got.recipe is not None and got.manifest is None
    (problem,) = got.problems
    assert problem.file == "a/acl/manifest.x86_64.jsonc" and problem.line == 4
    assert got.providers == {"acl"}


def test_broken_recipe_becomes_a_record() -> None:
    got = load_entry("a/acl", b"name: [", None, "x86_64")
    assert got.recipe is None
    assert got.problems[0].file == "a/acl/stone.yaml" and got.problems[0].line >= 1
