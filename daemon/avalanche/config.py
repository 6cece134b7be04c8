"""The builder's configuration: where it keeps caches, builds and artefacts, and its limits."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path


class SandboxMode(StrEnum):
    #: Use bubblewrap when it is installed, else a plain subprocess with a warning in the log.
    AUTO = "auto"
    #: Require bubblewrap; a build without it ends ``infrastructure``.
    BWRAP = "bwrap"
    #: Never sandbox (trusted recipes, or hosts without user namespaces).
    NONE = "none"


@dataclass(frozen=True)
class AvalancheConfig:
    """One builder's settings. ``root`` holds ``cache/``, ``builds/`` and ``artefacts/``."""

    root: Path
    builder: str = "avalanche"
    arch: str = "x86_64"
    backend: str = "script"
    jobs: int = field(default_factory=lambda: os.cpu_count() or 1)
    timeout_s: float = 3600.0
    sandbox: SandboxMode = SandboxMode.AUTO
    #: Keep the work tree of a build after it ends (for debugging a recipe).
    keep_work: bool = False
    #: Seconds a network fetch (source, index, package) may stall before it fails.
    fetch_timeout_s: float = 60.0
    #: Seconds between SIGTERM and SIGKILL when a build is stopped.
    kill_grace_s: float = 2.0

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    @property
    def builds_dir(self) -> Path:
        return self.root / "builds"

    @property
    def artefacts_dir(self) -> Path:
        return self.root / "artefacts"
