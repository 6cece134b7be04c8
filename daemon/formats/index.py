"""A channel's published index: a signed root listing content-addressed parts (format 2).

Why parts: an index of 50,000 packages is ~20 MB. Rewriting, signing and keeping all of it
for every publication made publishing cost the repository's size. Format 2 cuts the package
list (sorted by name) into parts; the root ``index.json`` lists each part's ``uri``, sha256,
size and package count, and only the root is signed. A publication writes the few parts that
changed plus a root of ~100 bytes per part; every other part is shared with the previous
generation by name (a part's file name is its sha256).

Checks a reader makes (:func:`read_part`): a part's size and sha256 must be the ones the
signed root lists, so the signature over the root covers every part. ``sha256sum`` does the
same by hand.

Format 1 (the whole package list in ``index.json`` itself) is still read: indexes written by
hand (tests, a local ``file://`` layer) and repositories published before format 2.

Pure: bytes in, bytes or structures out. The callers fetch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import msgspec

from daemon.formats import layout
from daemon.package import INDEX_FORMAT, Index, IndexEntry
from events.errors import CairnError

#: The format number of a root that lists parts.
ROOT_FORMAT = 2

_encode = msgspec.json.Encoder().encode


class IndexFormatError(CairnError):
    """An index root or part is malformed, or a part is not the one its root lists."""


class PartRef(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One part as the root lists it."""

    uri: str
    sha256: str
    size: int
    packages: int


class IndexRoot(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A generation's ``index.json`` in format 2: what is signed."""

    channel: str
    arch: str
    generation: int
    created: str
    packages: int
    parts: list[PartRef]
    format: int = ROOT_FORMAT


class _Probe(msgspec.Struct, frozen=True):
    format: int = INDEX_FORMAT


_parts_decoder = msgspec.json.Decoder(list[IndexEntry])


def part_bytes(entries: Sequence[bytes]) -> bytes:
    """A part's file: a JSON array of pre-encoded :class:`daemon.package.IndexEntry` values."""
    return b"[" + b",".join(entries) + b"]"


def part_ref(data: bytes, packages: int) -> PartRef:
    """How a root lists the part whose bytes are ``data``."""
    sha = hashlib.sha256(data).hexdigest()
    return PartRef(uri=layout.part_uri(sha), sha256=sha, size=len(data), packages=packages)


def root_bytes(channel: str, arch: str, generation: int, created: str,
               parts: Sequence[PartRef]) -> bytes:
    return _encode(IndexRoot(channel=channel, arch=arch, generation=generation,
                             created=created, packages=sum(p.packages for p in parts),
                             parts=list(parts)))


def read_root(data: bytes) -> Index | IndexRoot:
    """The signed ``index.json``: a format-2 root, or a complete format-1 index."""
    try:
        version = msgspec.json.decode(data, type=_Probe).format
        if version == INDEX_FORMAT:
            return msgspec.json.decode(data, type=Index)
        if version == ROOT_FORMAT:
            root = msgspec.json.decode(data, type=IndexRoot)
        else:
            raise IndexFormatError(f"index format {version} is not one this cairn reads "
                                   f"({INDEX_FORMAT} or {ROOT_FORMAT})")
    except msgspec.DecodeError as exc:  # ValidationError is one
        raise IndexFormatError(f"not a valid index: {exc}") from None
    for part in root.parts:
        if part.uri != layout.part_uri(part.sha256):
            raise IndexFormatError(f"part {part.sha256} has uri {part.uri!r}, expected "
                                   f"{layout.part_uri(part.sha256)!r}")
    return root


def read_part(part: PartRef, data: bytes) -> list[IndexEntry]:
    """A part's entries, once its bytes are shown to be the ones the root lists."""
    if len(data) != part.size:
        raise IndexFormatError(f"part {part.uri} has {len(data)} bytes, the root says "
                               f"{part.size}")
    digest = hashlib.sha256(data).hexdigest()
    if digest != part.sha256:
        raise IndexFormatError(f"part {part.uri} has sha256 {digest}, the root says "
                               f"{part.sha256}")
    try:
        entries = _parts_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise IndexFormatError(f"part {part.uri} is not a list of index entries: {exc}"
                               ) from None
    if len(entries) != part.packages:
        raise IndexFormatError(f"part {part.uri} lists {len(entries)} packages, the root "
                               f"says {part.packages}")
    return entries


def assemble(root: IndexRoot, parts: Sequence[Sequence[IndexEntry]]) -> Index:
    """The complete index of ``root`` from its parts' entries (in the root's order)."""
    packages = [entry for part in parts for entry in part]
    return Index(channel=root.channel, arch=root.arch, generation=root.generation,
                 created=root.created, packages=packages)


def load(data: bytes, fetch: Callable[[str], bytes]) -> Index:
    """The complete index whose signed root is ``data``; ``fetch(uri)`` reads a part by its
    ``uri`` relative to the root. Every part is checked against the root."""
    root = read_root(data)
    if isinstance(root, Index):
        return root
    return assemble(root, [read_part(part, fetch(part.uri)) for part in root.parts])
