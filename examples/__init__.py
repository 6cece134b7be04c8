"""The bundled example recipes (``examples/recipes``), shipped as package data so that
``cairn up`` builds them from a wheel install as well as from a checkout."""

from __future__ import annotations

from importlib import resources
from importlib.abc import Traversable


def recipes() -> Traversable:
    """The directory of example recipes."""
    return resources.files(__name__).joinpath("recipes")
