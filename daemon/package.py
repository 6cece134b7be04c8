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
from typing import Annotated

import msgspec

MANIFEST_DIR = ".cairn/packages"
ARCHIVE_SUFFIX = ".tar.zst"
INDEX_FORMAT = 1

PackageName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")]
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


class Index(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A channel's index for one arch, as of one generation."""

    channel: str
    arch: str
    generation: int
    created: str
    packages: list[IndexEntry]
    format: int = INDEX_FORMAT


def manifest_path(name: str) -> str:
    """Where a package's manifest sits inside its archive."""
    return f"{MANIFEST_DIR}/{name}.json"


def archive_name(name: str, version: str, release: int, build_release: int, arch: str) -> str:
    """``name-version-release-buildrelease-arch.tar.zst``."""
    for label, value in (("version", version), ("arch", arch)):
        if not _FIELD.match(value):
            raise ValueError(f"package {label} {value!r} has characters unsafe in a file name")
    return f"{name}-{version}-{release}-{build_release}-{arch}{ARCHIVE_SUFFIX}"


def name_provider(name: str) -> str:
    """The provider every package has for its own name."""
    return f"name({name})"
