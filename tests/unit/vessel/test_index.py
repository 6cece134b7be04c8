"""Index entries as vessel encodes them, and which release is newer."""

from __future__ import annotations

import hashlib

import msgspec

from daemon.package import IndexEntry
from daemon.vessel.index import encode_entry, index_entry, is_newer
from tests.unit.vessel.builders import Pkg, manifest_of


def test_an_entry_names_its_pool_file_from_the_index() -> None:
    sha = hashlib.sha256(b"0").hexdigest()
    entry = index_entry(manifest_of(Pkg(name="p0", files={"usr/x": b"1"})), sha, 100)
    assert msgspec.json.decode(encode_entry(entry), type=IndexEntry) == entry
    assert entry.uri == f"../../../pool/{sha[:2]}/{sha}.tar.zst"


def test_newer_compares_release_then_build_release() -> None:
    assert is_newer((2, 1), (1, 5))
    assert is_newer((1, 2), (1, 1))
    assert not is_newer((1, 1), (1, 1))
    assert not is_newer((1, 9), (2, 1))
