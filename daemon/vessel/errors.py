"""Vessel's errors: one type for every refused import, so the service shell maps it to
``publish-failed`` without guessing from exception classes."""

from __future__ import annotations

from events.errors import CairnError


class ImportRefused(CairnError):
    """A build was not imported. ``str()`` names the artefact, the path and what is wrong.

    ``retryable`` is True when the cause is not the build's (the builder did not answer, a
    5xx, a full disk): summit may try again later. A bad hash or a hostile archive is final.
    """

    def __init__(self, reason: str, *, retryable: bool = False, artefact: str | None = None):
        message = f"artefact {artefact}: {reason}" if artefact else reason
        super().__init__(message)
        self.reason = message
        self.retryable = retryable
        self.artefact = artefact


class RepositoryError(CairnError):
    """The repository cannot do what an operator asked (unknown channel, pruned generation)."""
