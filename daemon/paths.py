"""Where cairn keeps state when nobody says otherwise."""

from __future__ import annotations

import os
from pathlib import Path


def default_state_dir() -> Path:
    """``$CAIRN_STATE_DIR``, else ``$XDG_STATE_HOME/cairn``, else ``~/.local/state/cairn``."""
    explicit = os.environ.get("CAIRN_STATE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "cairn"


def journal_db(state_dir: Path | None = None) -> Path:
    return (state_dir or default_state_dir()) / "journal.sqlite"


def default_cache_dir() -> Path:
    """``$CAIRN_CACHE_DIR``, else ``$XDG_CACHE_HOME/cairn``, else ``~/.cache/cairn``."""
    explicit = os.environ.get("CAIRN_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cairn"
