"""Errors of a build, each carrying the outcome it gives the build.

A build ends ``failed`` when the recipe (or what it asks for) is at fault and a person must
change it, ``infrastructure`` when the builder or network is at fault and a retry may work,
``timeout``/``cancelled`` when it was stopped, ``silent``/``log-limit``/``output-limit`` when
it passed one of its limits. Carrying the outcome on the error keeps that
decision next to the code that knows the cause.
"""

from __future__ import annotations

from events.errors import CairnError
from events.payloads import Outcome


class BuildError(CairnError):
    """Base of every deliberate build error; ``outcome`` is what ``build-done`` reports."""

    outcome: Outcome = Outcome.FAILED

    def __init__(self, message: str, *, outcome: Outcome | None = None) -> None:
        super().__init__(message)
        if outcome is not None:
            self.outcome = outcome


class RecipeError(BuildError):
    """The recipe is malformed or asks for something the builder cannot do."""


class CheckoutError(BuildError):
    """The recipe repository or commit cannot be fetched or exported."""

    outcome = Outcome.INFRASTRUCTURE


class SourceError(BuildError):
    """An upstream source is wrong (hash mismatch, unsafe archive) or cannot be fetched."""


class DependencyError(BuildError):
    """A build dependency is not provided by the repository, or its package is wrong."""


class StepFailed(BuildError):
    """A build step exited non-zero."""


class BuildTimeout(BuildError):
    """The build outlived its time limit and was killed."""

    outcome = Outcome.TIMEOUT


class BuildSilent(BuildError):
    """The build printed nothing for longer than its silence limit and was killed."""

    outcome = Outcome.SILENT


class LogLimitExceeded(BuildError):
    """The build log passed its size cap, and the build's limits say that fails it."""

    outcome = Outcome.LOG_LIMIT


class OutputLimitExceeded(BuildError):
    """What the build installed or packed passed its output size cap."""

    outcome = Outcome.OUTPUT_LIMIT


class BuildCancelled(BuildError):
    """The build was cancelled and its processes killed."""

    outcome = Outcome.CANCELLED


class PackagingError(BuildError):
    """The install tree cannot be packed, or a manifest names an unsafe path."""


class UnsafePathError(PackagingError):
    """A path in a manifest or archive is absolute, contains ``..`` or is otherwise unsafe."""
