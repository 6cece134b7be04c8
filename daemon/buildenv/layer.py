"""The layer of cairn packages on top of an environment: the farm's own packages.

The packages are chosen from a channel's index exactly as a build's dependencies are
(:func:`daemon.avalanche.deps.resolve`), downloaded, checked against the index's sha256 and
size, and unpacked into the root (:func:`daemon.avalanche.deps.install`). When the
declaration names a ``key``, the index's minisign signature (``index.json.minisig``) must
verify with it before anything is used; every part the signed root lists is checked against
its sha256 (:mod:`daemon.formats.index`).
"""

from __future__ import annotations

import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from daemon.avalanche import deps
from daemon.avalanche.fetch import local_path
from daemon.formats import index as index_format
from daemon.package import Index
from daemon.vessel import minisign

from .declaration import Layer
from .errors import BuildEnvError
from .manifest import EnvLayer

SIGNATURE_SUFFIX = ".minisig"


def _read(url: str, timeout: float) -> bytes:
    try:
        path = local_path(url)
        if path is not None:
            return path.read_bytes()
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310  (http(s) only: local_path took the rest)
            data: bytes = response.read()
            return data
    except OSError as exc:
        raise BuildEnvError(f"cannot fetch {url}: {exc}") from exc


def load_index(layer: Layer, *, timeout: float) -> Index:
    raw = _read(layer.index, timeout)
    if layer.key is not None:
        try:
            public = minisign.parse_public_key(Path(layer.key).read_text())
        except OSError as exc:
            raise BuildEnvError(f"cannot read layer.key {layer.key}: {exc}") from exc
        signature = _read(layer.index + SIGNATURE_SUFFIX, timeout).decode("utf-8", "replace")
        try:
            minisign.verify(public, raw, signature)
        except minisign.SignatureError as exc:
            raise BuildEnvError(f"index {layer.index} does not verify with {layer.key}: "
                                f"{exc}") from exc
    try:
        return index_format.load(
            raw, lambda uri: _read(urllib.parse.urljoin(layer.index, uri), timeout))
    except index_format.IndexFormatError as exc:
        raise BuildEnvError(f"index {layer.index} is malformed: {exc}") from exc


def install(layer: Layer, root: Path, cache_dir: Path, arch: str, *, timeout: float,
            line: Callable[[str], None]) -> EnvLayer:
    """Unpack ``layer``'s packages (and what they depend on) into ``root``."""
    index = load_index(layer, timeout=timeout)
    resolution = deps.resolve(index, layer.packages, arch)
    deps.install(resolution, layer.index, root, cache_dir, timeout=timeout, log=line)
    return EnvLayer(index_url=layer.index, channel=index.channel, generation=index.generation)
