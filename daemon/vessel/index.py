"""Build a channel's ``index.json`` bytes: pure functions, no I/O.

Why pre-encoded entries: a channel can list tens of thousands of packages and every
publication rewrites its index. Each package's :class:`daemon.package.IndexEntry` is encoded
once, when it enters the pool, and stored as JSON bytes; an index is the header plus those
bytes joined — no decoding and re-encoding of 50,000 entries per publication. The result is
byte-for-byte what ``msgspec.json.encode(Index(...))`` produces (a unit test holds that).
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from daemon.package import INDEX_FORMAT, IndexEntry, Manifest
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


def index_bytes(channel: str, arch: str, generation: int, created: str,
                entries: Iterable[bytes]) -> bytes:
    """``index.json``: the same bytes as encoding :class:`daemon.package.Index`."""
    head = (
        b'{"channel":' + _encode(channel) + b',"arch":' + _encode(arch)
        + b',"generation":' + _encode(generation) + b',"created":' + _encode(created)
        + b',"packages":['
    )
    parts = [head]
    for entry in entries:
        parts += (entry, b",")
    if len(parts) > 1:
        parts.pop()  # the last comma
    parts.append(b'],"format":' + _encode(INDEX_FORMAT) + b"}")
    return b"".join(parts)  # one copy of a possibly large index


def is_newer(candidate: tuple[int, int], published: tuple[int, int]) -> bool:
    """Whether ``(release, build_release)`` supersedes what a channel has.

    The recipe's release decides; for the same release, a higher build release (a rebuild of
    the same recipe, e.g. against new dependencies) is newer too.
    """
    return candidate > published
