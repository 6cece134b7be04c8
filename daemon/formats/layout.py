"""A published package repository's layout, spelled once for vessel, summit and clients.

::

    minisign.pub                                   the repository's public key
    <channel>/<arch>/<N>/index.json{,.zst,.minisig}  generation N (never modified)
    <channel>/<arch>/current -> <N>                the generation being served
    pool/<sha256[:2]>/<sha256>.tar.zst             every package, by content

The signature's trusted comment names what was signed: ``timestamp:<unix>``, ``file:
index.json``, ``channel``, ``arch`` and ``generation``, separated by tabs. Only the signature
vouches for it: read it with :func:`parse_trusted_comment` after the signature is verified
(or for display only).
"""

from __future__ import annotations

PUBLIC_KEY = "minisign.pub"
CURRENT = "current"
INDEX = "index.json"
INDEX_ZST = "index.json.zst"
SIGNATURE = "index.json.minisig"
POOL = "pool"
#: A pool file's ``uri`` as seen from ``<channel>/<arch>/<N>/index.json``.
POOL_FROM_INDEX = f"../../../{POOL}"
_TRUSTED = "trusted comment:"


def arch_path(channel: str, arch: str) -> str:
    return f"{channel}/{arch}"


def current_path(channel: str, arch: str) -> str:
    """``<channel>/<arch>/current``: where the served generation's files are."""
    return f"{arch_path(channel, arch)}/{CURRENT}"


def index_path(channel: str, arch: str) -> str:
    """``<channel>/<arch>/current/index.json``, relative to the repository's root."""
    return f"{current_path(channel, arch)}/{INDEX}"


def index_url(base: str, channel: str, arch: str) -> str:
    """The URL of a channel's current index under the repository at ``base``."""
    return f"{base.rstrip('/')}/{index_path(channel, arch)}"


def pool_uri(sha256: str) -> str:
    """The ``uri`` of a pool file relative to an index file."""
    return f"{POOL_FROM_INDEX}/{sha256[:2]}/{sha256}.tar.zst"


def trusted_comment(channel: str, arch: str, generation: int, timestamp: int) -> str:
    """The trusted comment vessel signs with a generation's index."""
    return (f"timestamp:{timestamp}\tfile:{INDEX}\tchannel:{channel}\tarch:{arch}"
            f"\tgeneration:{generation}")


def parse_trusted_comment(signature: str) -> dict[str, str]:
    """The fields of a ``.minisig`` file's trusted comment (``{}`` when it has none)."""
    for line in signature.splitlines():
        if line.startswith(_TRUSTED):
            fields = line.removeprefix(_TRUSTED).strip().split("\t")
            return dict(f.split(":", 1) for f in fields if ":" in f)
    return {}
