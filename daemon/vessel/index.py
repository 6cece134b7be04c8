"""A package's index entry, and which release is newer: pure functions, no I/O.

Why pre-encoded entries: each package's :class:`daemon.package.IndexEntry` is encoded once,
when it enters the pool, and stored as JSON bytes; an index part is those bytes joined
(:func:`daemon.formats.index.part_bytes`), never a decoding and re-encoding.
"""

from __future__ import annotations

import msgspec

from daemon.package import IndexEntry, Manifest
from daemon.vessel.config import pool_uri

_encode = msgspec.json.Encoder().encode


def index_entry(manifest: Manifest, sha256: str, size: int) -> IndexEntry:
    """How the index lists one pooled archive."""
    return IndexEntry(
        name=manifest.name, version=manifest.version, release=manifest.release,
        build_release=manifest.build_release, arch=manifest.arch, source=manifest.source,
        summary=manifest.summary, depends=list(manifest.depends),
        provides=list(manifest.provides), uri=pool_uri(sha256), sha256=sha256, size=size,
        environment=manifest.environment,
    )


def encode_entry(entry: IndexEntry) -> bytes:
    return _encode(entry)


def is_newer(candidate: tuple[int, int], published: tuple[int, int]) -> bool:
    """Whether ``(release, build_release)`` supersedes what a channel has.

    The recipe's release decides; for the same release, a higher build release (a rebuild of
    the same recipe, e.g. against new dependencies) is newer too.
    """
    return candidate > published
