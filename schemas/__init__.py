"""JSON Schema (draft 2020-12) of the envelope and of every event type and version.

The files are data shipped with the package; :func:`load` reads one by name whether cairn
runs from a checkout or from an installed wheel.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any


def names() -> list[str]:
    """Every schema file shipped."""
    return sorted(
        entry.name for entry in resources.files(__name__).iterdir() if entry.name.endswith(".json")
    )


def load(name: str) -> dict[str, Any]:
    """One schema, parsed."""
    text = resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
    result: dict[str, Any] = json.loads(text)
    return result
