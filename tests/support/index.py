"""A published channel index as a client reads it: the signed root, then its parts."""

from __future__ import annotations

import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import msgspec

from daemon.formats import index as index_format
from daemon.package import Index


def read_index(path: Path) -> Index:
    """The complete index whose root is the file ``path`` (parts read beside it)."""
    return index_format.load(path.read_bytes(), lambda uri: (path.parent / uri).read_bytes())


def fetch_index(url: str, timeout: float = 30) -> Index:
    """The complete index whose root is at ``url`` (http)."""
    def get(where: str) -> bytes:
        with urllib.request.urlopen(where, timeout=timeout) as response:
            data: bytes = response.read()
            return data
    return index_format.load(get(url), lambda uri: get(urllib.parse.urljoin(url, uri)))


def as_dict(index: Index) -> dict[str, Any]:
    data: dict[str, Any] = msgspec.to_builtins(index)
    return data
