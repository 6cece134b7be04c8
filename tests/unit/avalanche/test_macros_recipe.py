"""Macros expand as documented; stone.yaml parsing keeps what the builder needs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from daemon.avalanche.errors import RecipeError
from daemon.avalanche.macros import MacroContext, expand
from daemon.avalanche.recipe import load_recipe, parse_recipe
from tests.unit.avalanche.support import EXAMPLES

CTX = MacroContext(name="demo", version="1.2", release=3, jobs=4, arch="x86_64",
                   installroot="/b/install", workdir="/b/work", sourcedir="/b/src",
                   pkgdir="/b/recipe/pkg")  # fmt: skip
CORPUS = Path(__file__).resolve().parents[3] / ".." / "shared" / "corpora" / "serpent-recipes"


def test_actions_and_definitions_expand() -> None:
    defs = CTX.definitions()
    assert expand("%make_install", defs) == 'make -j 4 install DESTDIR="/b/install"'
    assert expand("%(installroot)%(libdir)/x", defs) == "/b/install/usr/lib/x"
    assert "--libdir=/usr/lib" in expand("%configure", defs)
    assert "-DCMAKE_INSTALL_PREFIX=/usr" in expand("%cmake", defs)
    assert expand("%meson", defs).startswith("meson setup --prefix=/usr")
    assert expand("%(libexecdir)", defs) == "/usr/lib/demo"
    assert expand("printf '%s %d\\n' a 1", defs) == "printf '%s %d\\n' a 1"


def test_unknown_definition_is_named() -> None:
    with pytest.raises(RecipeError, match=r"%\(nosuchthing\)"):
        expand("%(nosuchthing)", CTX.definitions())


def test_examples_parse() -> None:
    greet = load_recipe(EXAMPLES / "greet" / "stone.yaml")
    assert greet.builddeps == ("pkgconfig(libgreet)",)
    assert [s for s, _ in greet.steps] == ["build", "install", "check"]
    assert all(len(u.sha256) == 64 for u in greet.upstreams)


def test_git_upstream_and_bad_hash_are_refused() -> None:
    base = {"name": "x", "version": "1", "release": 1}
    with pytest.raises(RecipeError, match="git upstream"):
        parse_recipe({**base, "upstreams": [{"git|https://x/y.git": "abc"}]})
    with pytest.raises(RecipeError, match="no valid sha256"):
        parse_recipe({**base, "upstreams": [{"https://x/y.tar.gz": "nothex"}]})


def test_packages_expand_name() -> None:
    docs = {"%(name)-docs": {"paths": ["/usr/share/doc"]}}
    recipe = parse_recipe({"name": "x", "version": "1", "release": 1, "packages": [docs]})
    assert recipe.packages[0].name == "x-docs"
    assert recipe.packages[0].paths == ("/usr/share/doc",)


@pytest.mark.corpus
def test_corpus_recipes_parse_or_fail_clearly() -> None:
    if not CORPUS.is_dir():
        pytest.skip(f"Serpent recipe corpus not found at {CORPUS}")
    parsed = refused = 0
    for stone in sorted(CORPUS.glob("*/*/stone.yaml")):
        try:
            recipe = load_recipe(stone)
        except RecipeError as exc:
            assert "git upstream" in str(exc) or "sha256" in str(exc), str(exc)
            refused += 1
            continue
        raw = yaml.safe_load(stone.read_text())
        assert recipe.name == raw["name"] and recipe.release == int(raw["release"])
        parsed += 1
    assert parsed > 500
