"""The one error type of build environments; messages say what to do."""

from __future__ import annotations

from events.errors import CairnError


class BuildEnvError(CairnError):
    """A declaration, archive, record, signature or cache operation is wrong or failed."""
