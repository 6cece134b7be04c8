"""The builder's configuration: where it keeps caches, builds and artefacts, and its limits."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from events.payloads import LogOverflow


class SandboxMode(StrEnum):
    """Whether build steps run in the sandbox (:mod:`daemon.avalanche.sandbox`)."""

    #: Every step runs sandboxed; a build that cannot be sandboxed (no bubblewrap, no user
    #: namespaces, no free build uid) is refused with outcome ``infrastructure``.
    BWRAP = "bwrap"
    #: The same as ``bwrap``. Kept because older configurations name it; it no longer falls
    #: back to running a build unsandboxed.
    AUTO = "auto"
    #: Never sandbox: steps run as the builder's own user (root, if it is root) with its access
    #: to the host and the network. Only for trusted recipes, and only when named.
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
    #: The builder's own limits, in force where a task's ``limits`` leave one unset
    #: (``None``: no limit): silence (s), log cap and what passing it does, output cap.
    silence_s: float | None = None
    log_bytes: int | None = None
    log_overflow: LogOverflow = LogOverflow.FAIL
    output_bytes: int | None = None
    sandbox: SandboxMode = SandboxMode.BWRAP
    #: When the builder runs as root, each build runs as one host uid (gid the same number)
    #: of ``build_uid`` .. ``build_uid + build_uids - 1``, leased host-wide for its duration.
    #: The range must belong to no account (:mod:`daemon.avalanche.identity`).
    build_uid: int = 2_000_000_000
    build_uids: int = 64
    #: Where the per-uid lock files live (root only); shared by every builder of the host.
    uid_lock_dir: Path = Path("/run/cairn/build-uids")
    #: Processes and threads a build's user may have at once (RLIMIT_NPROC of its uid).
    max_processes: int = 1024
    #: Where build trees go; default ``<root>/builds`` when the build users can reach it.
    work_dir: Path | None = None
    #: Host directories a sandboxed build must not see (the farm's state directory).
    hidden: tuple[Path, ...] = ()
    #: Keep the work tree of a build after it ends (for debugging a recipe).
    keep_work: bool = False
    #: Whether a recipe that sets ``networking: true`` gets the host's network in its
    #: sandbox. Off: such a recipe fails saying so (a build with network can fetch what its
    #: recipe does not pin).
    allow_networking: bool = False
    #: Seconds a network fetch (source, index, package) may stall before it fails.
    fetch_timeout_s: float = 60.0
    #: Seconds between SIGTERM and SIGKILL when a build is stopped.
    kill_grace_s: float = 2.0
    #: The build environment (sha256 digest) every build runs in, pulled from the vessel at
    #: ``environment_url`` and checked with its public key ``environment_key``; ``None``: the
    #: host's own system is the build's root (:mod:`daemon.avalanche.environment`).
    environment: str | None = None
    environment_url: str | None = None
    environment_key: Path | None = None
    #: Unpacked environments kept in the cache (least recently used go first).
    environments_kept: int = 3
    #: Where the bare mirrors of recipe repositories live (``<dir>/git/``), when not in this
    #: builder's own cache: builders of one host given the same directory fetch each commit
    #: once between them, not once each (a file lock per mirror orders their fetches). Hidden
    #: from builds like the builder's root.
    mirror_cache: Path | None = None
    #: Whether a build that names no environment (neither its task nor ``environment``) may
    #: run on the host's own system, not hermetic. A builder daemon allows it only when its
    #: configuration asks for it by name (``environment = "host"``); otherwise it refuses.
    host_builds: bool = True

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    @property
    def mirror_root(self) -> Path:
        """The directory whose ``git/`` holds the recipe mirrors (see ``mirror_cache``)."""
        return self.mirror_cache or self.cache_dir

    @property
    def artefacts_dir(self) -> Path:
        return self.root / "artefacts"
