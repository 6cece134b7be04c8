"""The formats of build environments: manifest, record, listing, and where each is served.

* An environment is ``<digest>.tar.zst`` where ``digest`` is the sha256 of the archive's
  bytes. Its first member is ``.cairn/environment.json``: the :class:`EnvManifest` (what the
  tree is made of and what it provides). The manifest cannot hold the digest of the archive
  that contains it, so:
* a :class:`EnvRecord` (``<digest>.json``) binds the two: digest, archive size and manifest.
  vessel signs each record (``<digest>.json.minisig``), so a verified record vouches for the
  archive's bytes through the digest.
* vessel's :class:`EnvListing` (``environments/index.json`` + ``.minisig``) lists the
  environments it serves, newest push last.

Everything is under ``environments/`` beside the channels on vessel's HTTP root. Reading and
writing these formats happens only here (one reader per format).
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, TypeVar

import msgspec

from .errors import BuildEnvError

FORMAT = 1
_T = TypeVar("_T", bound=msgspec.Struct)
#: Directory of environments on vessel's HTTP root (and in its served tree).
ENV_DIR = "environments"
LISTING = "index.json"
SIGNATURE_SUFFIX = ".minisig"
ARCHIVE_SUFFIX = ".tar.zst"
RECORD_SUFFIX = ".json"
#: Where the manifest sits inside the archive (and so inside every unpacked root).
MANIFEST_MEMBER = ".cairn/environment.json"

_DIGEST = re.compile(r"^[0-9a-f]{64}$")
EnvName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,63}$")]
Digest = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]


class Origin(StrEnum):
    """Where a package of an environment came from."""

    DEBIAN = "debian"
    CAIRN = "cairn"


class EnvPackage(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str
    version: str
    origin: Origin


class EnvBase(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The Debian base as it was made: suite, variant and the apt source lines used."""

    suite: str
    variant: str
    sources: list[str]


class EnvLayer(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The cairn channel layer: which index (and generation) its packages came from."""

    index_url: str
    channel: str
    generation: int


class EnvManifest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What an environment is made of and what it provides."""

    name: EnvName
    arch: str
    #: sha256 of the declaration's canonical form (:func:`.declaration.Declaration.key`).
    declaration: str
    source_date_epoch: int
    base: EnvBase | None
    layer: EnvLayer | None
    packages: list[EnvPackage]
    provides: list[str]
    #: Sonames some ELF file of the tree needs that nothing in it provides (should be empty).
    unresolved: list[str]
    files: int
    #: Bytes of regular files once unpacked.
    size: int
    format: int = FORMAT


class EnvRecord(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An archive's digest and size with its manifest: what vessel signs and serves."""

    digest: Digest
    size: int
    manifest: EnvManifest
    format: int = FORMAT


class EnvSummary(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One environment as vessel's listing shows it."""

    digest: Digest
    name: EnvName
    arch: str
    size: int
    packages: int
    provides: int
    pushed: str


class EnvListing(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    environments: list[EnvSummary]
    format: int = FORMAT


def check_digest(value: str) -> str:
    """A digest as users type it (``sha256:`` prefix allowed) in canonical form."""
    digest = value.strip().lower().removeprefix("sha256:")
    if not _DIGEST.match(digest):
        raise BuildEnvError(f"{value!r} is not a sha256 digest (64 hex digits)")
    return digest


def archive_name(digest: str) -> str:
    return f"{check_digest(digest)}{ARCHIVE_SUFFIX}"


def record_name(digest: str) -> str:
    return f"{check_digest(digest)}{RECORD_SUFFIX}"


def resolve(listing: EnvListing, ref: str) -> str:
    """The digest ``ref`` names in ``listing``: an environment's name (its newest push), or a
    digest or a unique prefix of one (``sha256:`` allowed)."""
    named = [e.digest for e in listing.environments if e.name == ref]
    if named:
        return named[-1]
    prefix = ref.lower().removeprefix("sha256:")
    found = sorted({e.digest for e in listing.environments if e.digest.startswith(prefix)})
    if len(found) != 1 or not prefix:
        what = "matches no" if not found else f"matches {len(found)}"
        raise BuildEnvError(f"{ref!r} {what} published environment (give a name, or a digest "
                            "or a unique prefix of one)")
    return found[0]


def env_url(base_url: str, name: str) -> str:
    """The URL of ``name`` (an archive, record, signature or the listing) under ``base_url``."""
    return f"{base_url.rstrip('/')}/{ENV_DIR}/{name}"


def encode(value: EnvManifest | EnvRecord | EnvListing) -> bytes:
    """Stable bytes: the same value always encodes the same way."""
    return msgspec.json.format(msgspec.json.encode(value), indent=2) + b"\n"


def decode_manifest(raw: bytes, *, what: str) -> EnvManifest:
    return _decode(raw, EnvManifest, what)


def decode_record(raw: bytes, *, what: str) -> EnvRecord:
    return _decode(raw, EnvRecord, what)


def decode_listing(raw: bytes, *, what: str) -> EnvListing:
    return _decode(raw, EnvListing, what)


def _decode(raw: bytes, kind: type[_T], what: str) -> _T:
    try:
        value = msgspec.json.decode(raw, type=kind)
    except msgspec.DecodeError as exc:
        raise BuildEnvError(f"{what} is not a valid {kind.__name__}: {exc}") from exc
    if getattr(value, "format", FORMAT) != FORMAT:
        raise BuildEnvError(f"{what} has format {getattr(value, 'format', None)}; this cairn "
                            f"reads format {FORMAT}: upgrade cairn")
    return value
