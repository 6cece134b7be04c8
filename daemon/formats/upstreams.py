"""A recipe's ``upstreams``: what to fetch, how to check it, and where it goes in the build.

Two kinds, as boulder has them:

* a download, ``URL : sha256`` or ``URL: {hash, rename, stripdirs, unpack, unpackdir}``.
  cairn also takes a path relative to the recipe's directory for a file committed beside
  the recipe (``src/main.c : sha256``);
* a git repository, ``git|URL : commit`` or ``git|URL: {ref, clonedir, staging}``, pinned to
  a commit id.

Where each goes (:func:`layout_dir`) is boulder's: every fetched file is in the sources
directory under :func:`upstream_name`; an archive to unpack goes to ``<build
dir>/<unpackdir or its name>`` with ``stripdirs`` (default 1) leading directories removed; a
git tree is copied to ``<build dir>/<clonedir or its name>``; the steps start in the first
of those (the work directory). A plain file that is not an archive is copied into the work
directory (cairn's; boulder cannot unpack it).

Options boulder does not know are kept in ``unknown`` (boulder ignores them; a build names
them in its log).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .values import flag, short, shown

GIT_PREFIX = "git|"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".tbz2",
                    ".tar.zst", ".tar.lz", ".tar.lzma", ".zip")  # fmt: skip
_PLAIN_KEYS = frozenset(("hash", "rename", "stripdirs", "unpack", "unpackdir"))
_GIT_KEYS = frozenset(("ref", "clonedir", "staging"))


@dataclass(frozen=True, slots=True)
class PlainUpstream:
    """A download (or a file of the recipe) checked against its sha256."""

    url: str
    hash: str
    rename: str | None = None
    stripdirs: int = 1
    unpack: bool = True
    unpackdir: str | None = None
    unknown: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.rename or _last_segment(self.url)

    @property
    def is_archive(self) -> bool:
        return self.name.lower().endswith(ARCHIVE_SUFFIXES)

    @property
    def unpacked(self) -> bool:
        """Whether it is unpacked into a directory of its own in the build directory."""
        return self.unpack and self.is_archive


@dataclass(frozen=True, slots=True)
class GitUpstream:
    """A git repository at one commit (``url`` without the ``git|`` prefix)."""

    url: str
    ref: str
    clonedir: str | None = None
    staging: bool = True
    unknown: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return _last_segment(self.url)

    @property
    def pinned(self) -> bool:
        """Whether ``ref`` is a full commit id (a tag or branch can move)."""
        return bool(_COMMIT.match(self.ref))


Upstream = PlainUpstream | GitUpstream


def upstream_name(upstream: Upstream) -> str:
    """The file (or directory) name of an upstream in the sources directory."""
    return upstream.name


def layout_dir(upstream: Upstream) -> str | None:
    """Where in the build directory the upstream goes, relative to it (``None``: it is not
    unpacked: only in the sources directory, or copied into the work directory)."""
    if isinstance(upstream, GitUpstream):
        return upstream.clonedir or upstream.name
    if upstream.unpacked:
        return upstream.unpackdir or upstream.name
    return None


def work_subdir(upstreams: tuple[Upstream, ...]) -> str | None:
    """The work directory relative to the build directory: the first unpacked upstream's
    directory (``None``: the build directory itself)."""
    return next((d for u in upstreams if (d := layout_dir(u)) is not None), None)


def _last_segment(url: str) -> str:
    path = urlsplit(url).path if "://" in url else url
    return path.rsplit("/", 1)[-1]


def parse_upstreams(value: Any) -> tuple[Upstream, ...]:
    """The ``upstreams`` list; raises ``ValueError`` naming the entry."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ValueError("must be a list of 'URL : sha256' entries")
    return tuple(_upstream(entry) for entry in value)


def _upstream(entry: Any) -> Upstream:
    if not isinstance(entry, dict) or len(entry) != 1:
        raise ValueError(f"entry {shown(entry)} is not 'URL : sha256' (or 'git|URL : commit')")
    ((key, spec),) = entry.items()
    url = key.strip()
    if url.startswith(GIT_PREFIX):
        return _git(url.removeprefix(GIT_PREFIX), spec)
    return _plain(url, spec)


def _plain(url: str, spec: Any) -> PlainUpstream:
    if isinstance(spec, str):
        spec = {"hash": spec}
    if not isinstance(spec, dict):
        raise ValueError(f"upstream {short(url)}: give its sha256 ('URL : sha256' or 'hash: ...')")
    if "ref" in spec or "clonedir" in spec:
        raise ValueError(f"upstream {short(url)}: git options (ref, clonedir) need a 'git|' URL")
    digest = spec.get("hash")
    digest = digest.strip().lower() if isinstance(digest, str) else ""
    if not _SHA256.match(digest):
        raise ValueError(f"upstream {short(url)} has no valid sha256 "
                         f"(got {shown(spec.get('hash'))})")
    strip = spec.get("stripdirs")
    if strip is not None and not (isinstance(strip, str) and strip.isdigit() and int(strip) < 256):
        raise ValueError(f"upstream {short(url)}: stripdirs must be a whole number below 256")
    upstream = PlainUpstream(
        url=url, hash=digest, rename=_opt_text(spec, "rename", url),
        stripdirs=1 if strip is None else int(strip), unpack=_opt_flag(spec, "unpack", url),
        unpackdir=_opt_text(spec, "unpackdir", url),
        unknown=tuple(sorted(set(spec) - _PLAIN_KEYS)),
    )
    _check_name(upstream.name, url)
    return upstream


def _git(url: str, spec: Any) -> GitUpstream:
    if isinstance(spec, str):
        spec = {"ref": spec}
    if not isinstance(spec, dict):
        raise ValueError(f"git upstream {short(url)}: give its commit ('git|URL : commit')")
    if "hash" in spec:
        raise ValueError(f"git upstream {short(url)}: a git upstream takes 'ref' (a commit), "
                         "not 'hash'")
    ref = spec.get("ref")
    if not isinstance(ref, str) or not ref.strip():
        raise ValueError(f"git upstream {short(url)} names no commit ('ref')")
    upstream = GitUpstream(url=url, ref=ref.strip(), clonedir=_opt_text(spec, "clonedir", url),
                           staging=_opt_flag(spec, "staging", url),
                           unknown=tuple(sorted(set(spec) - _GIT_KEYS)))  # fmt: skip
    _check_name(upstream.name, url)
    return upstream


def _check_name(name: str, url: str) -> None:
    if not name or name in (".", "..") or "\0" in name:
        raise ValueError(f"upstream {short(url)}: cannot name its file; set 'rename'")


def _opt_text(spec: dict[str, Any], key: str, url: str) -> str | None:
    value = spec.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"upstream {short(url)}: {key} must be text")
    return value.strip()


def _opt_flag(spec: dict[str, Any], key: str, url: str) -> bool:
    value = spec.get(key)
    if value is None:
        return True
    try:
        return flag(value)
    except ValueError as exc:
        raise ValueError(f"upstream {short(url)}: {key} {exc}") from None
