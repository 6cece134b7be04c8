"""Vessel's settings and the layout of its state directory.

Why one layout object: the service, the CLI (promote, rollback, prune) and the tests must
agree on every path, and the served tree (``repo/``) must never contain the secret key or
the database. Layout::

    STATE/vessel.sqlite            the state (generations, members, packages, outbox, inbox)
    STATE/minisign.key             the secret key, mode 0600, never served
    STATE/tmp/                     downloads in progress (cleared on start)
    STATE/repo/                    the served repository root
    STATE/repo/minisign.pub
    STATE/repo/pool/ab/abcd….tar.zst
    STATE/repo/parts/abcd….json                          index parts (immutable, shared)
    STATE/repo/CHANNEL/ARCH/N/index.json{,.minisig}      generation N's root (immutable)
    STATE/repo/CHANNEL/ARCH/current -> N                     the published generation

Generation directories and ``current`` are siblings, so one relative ``uri``
(``../../../pool/…``, ``../../../parts/…``) is right from either path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from daemon.formats import layout
from events.errors import ConfigError

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")
_ARCH = re.compile(r"^[A-Za-z0-9_]+$")



@dataclass(frozen=True)
class VesselConfig:
    """Limits and policy. Sizes in bytes, times in seconds."""

    state_dir: Path
    #: Largest artefact accepted (compressed), whatever the event declares.
    max_artefact_bytes: int = 2 * 1024**3
    #: Largest total of file sizes inside one archive (decompression bombs stop here).
    max_unpacked_bytes: int = 1024**3
    #: Most members (files, dirs, symlinks) in one archive.
    max_members: int = 100_000
    #: Largest single file inside one archive.
    max_file_bytes: int = 512 * 1024**2
    #: Check every declared provider against the archive's files. Off only for a farm of
    #: ``noop`` builders, whose packages are empty and declare what a real build would provide.
    verify_provides: bool = True
    download_parallelism: int = 4
    connect_timeout: float = 10.0
    #: Longest silence while reading a download before it counts as not answering.
    read_timeout: float = 60.0
    #: Generations kept per channel and arch (besides the current one); older are pruned.
    keep_generations: int = 10

    def __post_init__(self) -> None:
        for name in ("max_artefact_bytes", "max_unpacked_bytes", "max_members",
                     "max_file_bytes", "download_parallelism", "keep_generations"):
            if getattr(self, name) < 1:
                raise ConfigError(f"vessel setting {name} must be at least 1")

    @property
    def layout(self) -> Layout:
        return Layout(self.state_dir)

    @property
    def archive_limits(self) -> ArchiveLimits:
        return ArchiveLimits(unpacked_bytes=self.max_unpacked_bytes, members=self.max_members,
                             file_bytes=self.max_file_bytes)


@dataclass(frozen=True)
class ArchiveLimits:
    """What one archive may hold; each refusal names the limit it hit and its setting."""

    #: ``max_unpacked_bytes``: the sum of the sizes of the archive's files.
    unpacked_bytes: int
    #: ``max_members``: files, directories and symlinks.
    members: int
    #: ``max_file_bytes``: any one file.
    file_bytes: int


@dataclass(frozen=True)
class Layout:
    state_dir: Path

    @property
    def db(self) -> Path:
        return self.state_dir / "vessel.sqlite"

    @property
    def secret_key(self) -> Path:
        return self.state_dir / "minisign.key"

    @property
    def tmp(self) -> Path:
        return self.state_dir / "tmp"

    @property
    def root(self) -> Path:
        return self.state_dir / "repo"

    @property
    def public_key(self) -> Path:
        return self.root / layout.PUBLIC_KEY

    @property
    def pool(self) -> Path:
        return self.root / layout.POOL

    @property
    def parts(self) -> Path:
        return self.root / layout.PARTS

    def part_file(self, sha256: str) -> Path:
        return self.parts / layout.part_name(sha256)

    @property
    def lock(self) -> Path:
        return self.state_dir / "current.lock"

    def pool_file(self, sha256: str) -> Path:
        return self.pool / sha256[:2] / f"{sha256}.tar.zst"

    def arch_dir(self, channel: str, arch: str) -> Path:
        check_channel(channel)
        check_arch(arch)
        return self.root / channel / arch

    def generation_dir(self, channel: str, arch: str, generation: int) -> Path:
        return self.arch_dir(channel, arch) / str(generation)

    def current(self, channel: str, arch: str) -> Path:
        return self.arch_dir(channel, arch) / layout.CURRENT


pool_uri = layout.pool_uri


def check_channel(channel: str) -> str:
    if not _NAME.match(channel) or channel in layout.RESERVED or len(channel) > 64:
        raise ConfigError(f"invalid channel name {channel!r} (letters, digits, _.+-; not "
                          f"{', '.join(repr(r) for r in layout.RESERVED)})")
    return channel


def check_arch(arch: str) -> str:
    if not _ARCH.match(arch) or len(arch) > 64:
        raise ConfigError(f"invalid arch {arch!r} (letters, digits and _ only)")
    return arch
