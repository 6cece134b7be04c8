"""The index format: a root listing parts by hash; every part is checked against it."""

from __future__ import annotations

import hashlib

import msgspec
import pytest

from daemon.formats import layout
from daemon.formats.index import (
    IndexFormatError,
    IndexRoot,
    load,
    part_bytes,
    part_ref,
    read_root,
    root_bytes,
)
from daemon.package import Index, IndexEntry


def entry(name: str) -> IndexEntry:
    sha = hashlib.sha256(name.encode()).hexdigest()
    return IndexEntry(name=name, version="1", release=1, build_release=1, arch="x86_64",
                      source=name, summary="", depends=[], provides=[],
                      uri=layout.pool_uri(sha), sha256=sha, size=1)


def published() -> tuple[bytes, dict[str, bytes]]:
    parts = [part_bytes([msgspec.json.encode(entry(n)) for n in names])
             for names in (["a", "b"], ["c"])]
    refs = [part_ref(data, count) for data, count in zip(parts, (2, 1), strict=True)]
    files = {ref.uri: data for ref, data in zip(refs, parts, strict=True)}
    return root_bytes("volatile", "x86_64", 4, "now", refs), files


def test_a_root_and_its_parts_make_the_whole_index() -> None:
    root, files = published()
    index = load(root, files.__getitem__)
    assert [p.name for p in index.packages] == ["a", "b", "c"]
    assert (index.channel, index.arch, index.generation) == ("volatile", "x86_64", 4)
    decoded = read_root(root)
    assert isinstance(decoded, IndexRoot) and decoded.packages == 3
    for ref in decoded.parts:  # a part's name is its content's sha256
        assert ref.uri.endswith(f"/{layout.PARTS}/{ref.sha256}.json")
        assert hashlib.sha256(files[ref.uri]).hexdigest() == ref.sha256


@pytest.mark.parametrize("offset", [0, 5, -2])
def test_a_flipped_byte_in_any_part_is_refused(offset: int) -> None:
    root, files = published()
    for uri, data in files.items():
        damaged = bytearray(data)
        damaged[offset] ^= 0x01
        with pytest.raises(IndexFormatError, match="has sha256"):
            load(root, {**files, uri: bytes(damaged)}.__getitem__)


def test_a_part_of_another_size_or_uri_is_refused() -> None:
    root, files = published()
    with pytest.raises(IndexFormatError, match="bytes, the root says"):
        load(root, lambda uri: files[uri] + b" ")
    moved = root.replace(b"../../../parts/", b"../../../elsewhere/")
    with pytest.raises(IndexFormatError, match="has uri"):
        read_root(moved)


def test_a_complete_format_1_index_is_still_read() -> None:
    whole = Index(channel="c", arch="a", generation=1, created="t", packages=[entry("x")])
    assert load(msgspec.json.encode(whole), lambda uri: b"") == whole
    with pytest.raises(IndexFormatError, match="format 9"):
        read_root(b'{"format": 9}')
    with pytest.raises(IndexFormatError, match="not a valid index"):
        read_root(b"[]")
