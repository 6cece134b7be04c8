"""The recipe's ``upstreams``, fetched, verified and laid out for the build.

An upstream is an ``https://``/``http://`` URL or a plain file committed in the recipe's own
directory, named by a relative path without ``..`` that, links followed, stays inside that
directory. Nothing else: the builder fetches as its own user (root, on a farm) before any
sandbox, so a ``file://`` URL or a path out of the recipe would publish whatever host file it
names. A git upstream is a repository at a pinned commit (:mod:`.gitsource`). Each download
is checked against its sha256 and cached by it under ``cache/sources/``. A wrong hash names
the expected one; the actual hash is shown only for a file of the recipe itself, never for a
download, whose content the recipe does not provide. Layout in the build:

- every verified file is copied to ``$sourcedir/<name>`` (``name`` = ``rename`` or basename);
- an archive (``.tar[.gz|.xz|.bz2|.zst]``, ``.tgz``, ``.zip``) with ``unpack`` (the default) is
  unpacked safely into ``$workdir``; a single top-level directory is stripped, as boulder
  does, so the steps start in the source tree;
- any other file is also copied into ``$workdir/<name>``.

Later upstreams overwrite files of earlier ones on a name clash.
"""

from __future__ import annotations

import posixpath
import shutil
from collections.abc import Callable
from pathlib import Path

from daemon.formats.upstreams import GitUpstream, PlainUpstream, Upstream

from .errors import SourceError
from .fetch import fetch_verified, is_remote
from .gitsource import lay_out, write_upstream
from .unpack import is_archive, strip_single_top, unpack


def resolve_url(upstream: PlainUpstream, recipe_dir: Path) -> str:
    """The URL to fetch: an http(s) URL as written, or the recipe's own file as a host path."""
    url = upstream.url
    if is_remote(url):
        return url
    if "://" in url or url.lower().startswith("file:"):
        raise SourceError(
            f"upstream {url}: a farm build fetches only https:// and http:// upstreams, or a "
            "file committed in the recipe's directory (named by its relative path)"
        )
    if not url or posixpath.isabs(url) or "\0" in url or ".." in url.split("/"):
        raise SourceError(
            f"upstream {url}: a file upstream must be a relative path inside the recipe's "
            "directory, without '..'"
        )
    inside = recipe_dir.resolve()
    try:
        path = (recipe_dir / url).resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise SourceError(f"upstream {url} is not a file in the recipe's directory") from exc
    if inside not in path.parents:
        raise SourceError(f"upstream {url} leads out of the recipe's directory through a link")
    if not path.is_file():
        raise SourceError(f"upstream {url} is not a file in the recipe's directory")
    return str(path)


def upstream_name(upstream: PlainUpstream) -> str:
    base = upstream.rename or posixpath.basename(upstream.url.split("?", 1)[0].rstrip("/"))
    if not base or base in (".", "..") or "/" in base or "\0" in base:
        raise SourceError(f"upstream {upstream.url}: cannot derive a file name; set 'rename'")
    return base


def prepare_sources(
    upstreams: tuple[Upstream, ...],
    recipe_dir: Path,
    workdir: Path,
    sourcedir: Path,
    cache_dir: Path,
    *,
    timeout: float,
    log: Callable[[str], None],
) -> None:
    """Fetch, verify and lay out every upstream (see the module docstring)."""
    workdir.mkdir(parents=True, exist_ok=True)
    sourcedir.mkdir(parents=True, exist_ok=True)
    for index, upstream in enumerate(upstreams):
        if isinstance(upstream, GitUpstream):
            tree = sourcedir / upstream.name
            write_upstream(upstream, cache_dir, tree, log)
            lay_out(tree, workdir, upstream, first=index == 0)
            continue
        url = resolve_url(upstream, recipe_dir)
        name = upstream_name(upstream)
        cached, hit = fetch_verified(
            url, upstream.hash, cache_dir / "sources", timeout=timeout, error=SourceError,
            disclose=not is_remote(url),
        )
        log(f"source {upstream.url}: sha256 {upstream.hash} ok{' (cached)' if hit else ''}")
        shutil.copyfile(cached, sourcedir / name)
        if upstream.unpack and is_archive(name):
            staging = workdir / f".unpack-{index}"
            unpack(cached, staging, name=name)
            _merge(strip_single_top(staging), workdir)
            shutil.rmtree(staging, ignore_errors=True)
        else:
            shutil.copyfile(cached, workdir / name)


def _merge(src: Path, dest: Path) -> None:
    for child in src.iterdir():
        target = dest / child.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        shutil.move(str(child), target)
