"""The build backends this builder knows, by the name its configuration uses.

The table lives here, above the plugins, so that the backend port (:mod:`.backend`) does
not import its own implementations.
"""

from __future__ import annotations

from collections.abc import Callable

from events.payloads import Outcome

from .backend import Backend
from .errors import BuildError
from .noop import NoopBackend
from .script import ScriptBackend

BACKENDS: dict[str, Callable[[], Backend]] = {
    NoopBackend.name: NoopBackend,
    ScriptBackend.name: ScriptBackend,
}


def get_backend(name: str) -> Backend:
    """The backend registered as ``name``."""
    factory = BACKENDS.get(name)
    if factory is None:
        known = ", ".join(sorted(BACKENDS))
        raise BuildError(
            f"unknown build backend {name!r} in the builder's configuration; known: {known}",
            outcome=Outcome.INFRASTRUCTURE,
        )
    return factory()
