"""stone.yaml parsing keeps what the builder needs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from daemon.avalanche.errors import RecipeError
from daemon.avalanche.recipe import load_recipe, parse_recipe
from daemon.formats.upstreams import PlainUpstream
from tests.unit.avalanche.support import EXAMPLES

CORPUS = Path(__file__).resolve().parents[3] / ".." / "shared" / "corpora" / "serpent-recipes"


def test_examples_parse() -> None:
    greet = load_recipe(EXAMPLES / "greet" / "stone.yaml")
    assert greet.builddeps == ("pkgconfig(libgreet)",)
    assert greet.steps.present() == ("build", "install", "check")
    assert all(isinstance(u, PlainUpstream) and len(u.hash) == 64 for u in greet.upstreams)


def test_the_builder_keeps_the_version_as_written(tmp_path: Path) -> None:
    """A builder once read ``1.10`` as 1.1 and named its packages ``...-1.1-...``."""
    stone = tmp_path / "stone.yaml"
    stone.write_text("name: x\nversion: 1.10\nrelease: 1\n")
    assert load_recipe(stone).version == "1.10"


def test_a_bad_hash_is_refused() -> None:
    with pytest.raises(RecipeError, match="no valid sha256"):
        parse_recipe(b"name: x\nversion: 1\nrelease: 1\nupstreams:\n"
                     b"  - https://x/y.tar.gz: nothex\n")


def test_packages_expand_name() -> None:
    recipe = parse_recipe(b"name: x\nversion: 1\nrelease: 1\npackages:\n"
                          b"  - '%(name)-docs':\n      paths: [/usr/share/doc]\n")
    assert recipe.packages[0].name == "x-docs"
    assert [r.path for r in recipe.packages[0].paths] == ["/usr/share/doc"]


@pytest.mark.corpus
def test_corpus_recipes_parse_as_yaml_reads_them() -> None:
    if not CORPUS.is_dir():
        pytest.skip(f"Serpent recipe corpus not found at {CORPUS}")
    parsed = 0
    for stone in sorted(CORPUS.glob("*/*/stone.yaml")):
        recipe = load_recipe(stone)
        raw = yaml.safe_load(stone.read_text())
        assert recipe.name == raw["name"] and recipe.release == int(raw["release"])
        parsed += 1
    assert parsed == 835
