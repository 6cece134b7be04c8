"""A published package repository's layout, spelled once for vessel, summit and clients.

::

    minisign.pub                                   the repository's public key
    <channel>/<arch>/<N>/index.json{,.minisig}     generation N's signed root (never modified)
    <channel>/<arch>/current -> <N>                the generation being served
    parts/<sha256>.json                            index parts, by content (never modified)
    pool/<sha256[:2]>/<sha256>.tar.zst             every package, by content

A generation's ``index.json`` is a small *root*: it lists the index's parts by sha256, size
and ``uri`` (relative to the root, like every ``uri`` in the index); each part is a JSON array
of package entries (:mod:`daemon.formats.index`). A part's file name is its own sha256, so
generations share every part that did not change, and ``sha256sum`` checks any part against
the signed root. Only the root is signed (``minisign -V -m index.json``).

The signature's trusted comment names what was signed: ``timestamp:<unix>``, ``file:
index.json``, ``channel``, ``arch`` and ``generation``, separated by tabs. Only the signature
vouches for it: read it with :func:`parse_trusted_comment` after the signature is verified
(or for display only).
"""

from __future__ import annotations

PUBLIC_KEY = "minisign.pub"
CURRENT = "current"
INDEX = "index.json"
SIGNATURE = "index.json.minisig"
POOL = "pool"
PARTS = "parts"
#: Top-level names that are not channels.
RESERVED = (POOL, PARTS, "environments")
#: A pool file's ``uri`` as seen from ``<channel>/<arch>/<N>/index.json``.
POOL_FROM_INDEX = f"../../../{POOL}"
#: An index part's ``uri`` as seen from the same root.
PARTS_FROM_INDEX = f"../../../{PARTS}"
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


def part_uri(sha256: str) -> str:
    """The ``uri`` of an index part relative to the root ``index.json`` that lists it."""
    return f"{PARTS_FROM_INDEX}/{part_name(sha256)}"


def part_name(sha256: str) -> str:
    """An index part's file name under ``parts/``."""
    return f"{sha256}.json"


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
