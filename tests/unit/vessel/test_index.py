"""The pre-encoded index is exactly the msgspec encoding of daemon.package.Index."""

from __future__ import annotations

import hashlib

import msgspec

from daemon.package import Index
from daemon.vessel.index import encode_entry, index_bytes, index_entry, is_newer
from tests.unit.vessel.builders import Pkg, manifest_of


def test_index_bytes_match_msgspec_encoding() -> None:
    entries = []
    for i in range(3):
        sha = hashlib.sha256(str(i).encode()).hexdigest()
        entries.append(index_entry(manifest_of(Pkg(name=f"p{i}", files={"usr/x": b"1"})),
                                   sha, 100 + i))
    data = index_bytes("volatile", "x86_64", 7, "2025-01-01T00:00:00+00:00",
                       [encode_entry(e) for e in entries])
    decoded = msgspec.json.decode(data, type=Index)
    assert decoded.packages == entries
    assert decoded.generation == 7
    assert msgspec.json.encode(decoded) == data
    assert entries[0].uri == f"../../../pool/{entries[0].sha256[:2]}/{entries[0].sha256}.tar.zst"


def test_empty_index_decodes() -> None:
    data = index_bytes("stable", "aarch64", 1, "t", [])
    assert msgspec.json.decode(data, type=Index).packages == []


def test_newer_compares_release_then_build_release() -> None:
    assert is_newer((2, 1), (1, 5))
    assert is_newer((1, 2), (1, 1))
    assert not is_newer((1, 1), (1, 1))
    assert not is_newer((1, 9), (2, 1))
