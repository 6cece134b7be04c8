"""Source and package names follow one pattern, checked when a recipe is read and again where
a name becomes a path; an unsafe name or version is the recipe's fault."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from daemon.avalanche.errors import RecipeError, UnsafePathError
from daemon.avalanche.packaging import PackageMeta, write_package
from daemon.avalanche.recipe import load_recipe
from daemon.avalanche.recipe import parse_recipe as read_recipe
from daemon.avalanche.split import PackagePlan
from daemon.package import InvalidName, archive_name, check_name, check_version

BASE: dict[str, Any] = {"name": "demo", "version": "1.0", "release": 1}


def parse_recipe(doc: dict[str, Any], origin: str) -> object:
    """The recipe ``doc`` written as YAML (each value as a JSON scalar: YAML reads it back
    as the same text), through the builder's reader."""
    lines = []
    for key, value in doc.items():
        if isinstance(value, list):
            lines.append(f"{key}:")
            for entry in value:
                ((sub, spec),) = entry.items()
                lines.append(f"  - {json.dumps(sub)}: {json.dumps(spec)}")
        else:
            lines.append(f"{key}: {json.dumps(str(value))}")
    return read_recipe(("\n".join(lines) + "\n").encode(), origin)
UNSAFE_NAMES = ["../../../x", "a/b", ".hidden", "..", "-dash", "x\n", "", "x" * 257, "a b"]


@pytest.mark.parametrize("name", UNSAFE_NAMES)
def test_unsafe_names_are_refused_by_the_one_rule(name: str) -> None:
    with pytest.raises(InvalidName, match="not a valid name"):
        check_name(name)


@pytest.mark.parametrize("name", ["glibc", "libstdc++-devel", "python3.11", "_x", "a" * 256])
def test_real_names_pass(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["../../../x", "a/b", "x\n", ".."])
def test_a_recipe_named_like_a_path_is_refused(name: str) -> None:
    with pytest.raises(RecipeError, match="the recipe's name"):
        parse_recipe({**BASE, "name": name}, origin="r:stone.yaml")


@pytest.mark.parametrize("package", ["../../../x", "%(name)/../../x", "%(name) x"])
def test_a_sub_package_named_like_a_path_is_refused(package: str) -> None:
    doc = {**BASE, "packages": [{package: {"paths": ["/usr/share"]}}]}
    with pytest.raises(RecipeError, match=r"r:stone.yaml:\d+: .*package .* is not a valid name"):
        parse_recipe(doc, origin="r:stone.yaml")


@pytest.mark.parametrize("version", ["1.0/../../x", "../1", "1 0", "-1", "1.0\n"])
def test_an_unsafe_version_is_a_recipe_error(version: str) -> None:
    with pytest.raises(RecipeError, match="the recipe's version"):
        parse_recipe({**BASE, "version": version}, origin="r:stone.yaml")
    with pytest.raises(InvalidName):
        check_version(version)


def test_a_recipe_that_is_not_utf8_is_a_recipe_error(tmp_path: Path) -> None:
    stone = tmp_path / "stone.yaml"
    stone.write_bytes(b"name: caf\xe9\nversion: 1\nrelease: 1\n")
    with pytest.raises(RecipeError, match=r"not UTF-8 text \(byte 9"):
        load_recipe(stone, origin="repo:cafe/stone.yaml")


def test_packaging_checks_the_name_again(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b" / "out"
    meta = PackageMeta(source="demo", version="1.0", release=1, build_release=1, arch="x86_64")
    with pytest.raises(UnsafePathError, match="not a valid name"):
        write_package(PackagePlan("../../x", "", ()), None, meta, out)
    with pytest.raises(UnsafePathError, match="unsafe in a file name"):
        write_package(PackagePlan("x", "", ()), None,
                      PackageMeta("demo", "../1", 1, 1, "x86_64"), out)  # fmt: skip
    assert list(tmp_path.rglob("*.tar.zst")) == []
    with pytest.raises(InvalidName):
        archive_name("../x", "1", 1, 1, "x86_64")
