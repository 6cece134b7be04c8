"""The package format shared by avalanche (writes it), vessel (checks and indexes it) and
summit (reads providers from the index).

A package is ``name-version-release-buildrelease-arch.tar.zst``: a zstd-compressed POSIX tar
of the installed files (relative paths such as ``usr/bin/hello``) plus its manifest at
``.cairn/packages/<name>.json``, so that several packages unpacked into one root keep their
manifests side by side, like a package database.

A repository channel's ``index.json`` lists :class:`IndexEntry` records.
"""

from __future__ import annotations

import re
from enum import StrEnum

import msgspec

from events.errors import CairnError
from events.payloads import NAME_MAX_LENGTH, NAME_PATTERN, Name

MANIFEST_DIR = ".cairn/packages"
ARCHIVE_SUFFIX = ".tar.zst"
INDEX_FORMAT = 1

#: A package's (or source's) name: the one pattern of :data:`events.payloads.Name`.
PackageName = Name
_NAME = re.compile(NAME_PATTERN)
#: Versions and arches in archive names. ``-`` is allowed after the first character because real
#: upstream versions carry it (``3.0.0-rc.3``, ``2024-07-02``); names already contain ``-``, so
#: archive names are read from the manifest inside, never parsed from the file name.
_FIELD = re.compile(r"^[A-Za-z0-9_.+~][A-Za-z0-9_.+~-]*$")


class FileType(StrEnum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"


class FileEntry(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One path a package installs; ``path`` is relative (``usr/bin/hello``)."""

    path: str
    type: FileType
    mode: int
    size: int = 0
    sha256: str | None = None
    target: str | None = None


class Manifest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What one package is, what it needs and provides, and every file it holds."""

    name: PackageName
    version: str
    release: int
    build_release: int
    arch: str
    source: str
    summary: str = ""
    depends: list[str] = msgspec.field(default_factory=list)
    provides: list[str] = msgspec.field(default_factory=list)
    files: list[FileEntry] = msgspec.field(default_factory=list)
    #: The build environment the package was built in (its sha256 digest); ``None``: the
    #: builder host's own system, so it is not hermetic (what the host had may be in it).
    environment: str | None = None


class IndexEntry(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One package as a repository index lists it."""

    name: PackageName
    version: str
    release: int
    build_release: int
    arch: str
    source: str
    summary: str
    depends: list[str]
    provides: list[str]
    uri: str
    sha256: str
    size: int
    #: The build environment that built it (sha256 digest); ``None``: not hermetic.
    environment: str | None = None


class Index(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A channel's index for one arch, as of one generation."""

    channel: str
    arch: str
    generation: int
    created: str
    packages: list[IndexEntry]
    format: int = INDEX_FORMAT


class InvalidName(CairnError, ValueError):
    """A name or version that is not safe to make a file name of."""


def check_name(name: str, *, what: str = "name") -> str:
    """Return ``name`` if it is a valid source or package name, else raise InvalidName.

    Every reader of recipes calls this on the names it reads, and every writer calls it
    again where a name becomes a path: a name is letters, digits and ``_.+-``, starts with a
    letter, digit or ``_`` (so never ``.`` or ``..``), has no ``/``, and is at most
    ``NAME_MAX_LENGTH`` characters."""
    if not isinstance(name, str) or len(name) > NAME_MAX_LENGTH or not _NAME.fullmatch(name):
        shown = repr(name) if len(repr(name)) <= 80 else repr(name)[:77] + "..."
        raise InvalidName(
            f"{what} {shown} is not a valid name: use letters, digits and _.+- (not first: "
            f".+-), at most {NAME_MAX_LENGTH} characters"
        )
    return name


def check_version(version: str, *, what: str = "version") -> str:
    """Return ``version`` if it is safe in an archive's file name, else raise InvalidName."""
    valid = isinstance(version, str) and len(version) <= NAME_MAX_LENGTH
    if not valid or not _FIELD.fullmatch(version):
        shown = repr(version) if len(repr(version)) <= 80 else repr(version)[:77] + "..."
        raise InvalidName(f"{what} {shown} has characters unsafe in a file name: use letters, "
                          "digits and _.+~- (not first: -)")  # fmt: skip
    return version


def manifest_path(name: str) -> str:
    """Where a package's manifest sits inside its archive."""
    return f"{MANIFEST_DIR}/{name}.json"


def archive_name(name: str, version: str, release: int, build_release: int, arch: str) -> str:
    """``name-version-release-buildrelease-arch.tar.zst``; refuses names unsafe in a path."""
    check_name(name, what="package name")
    check_version(version, what="package version")
    check_version(arch, what="package arch")
    return f"{name}-{version}-{release}-{build_release}-{arch}{ARCHIVE_SUFFIX}"


def name_provider(name: str) -> str:
    """The provider every package has for its own name."""
    return f"name({name})"
