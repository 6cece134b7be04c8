"""The recipe's ``upstreams``, fetched, verified and laid out for the build.

An upstream is an ``https://``/``http://``/``file://`` URL or a path relative to the recipe
directory (a file committed beside ``stone.yaml``). Each is checked against its sha256 and
cached by it under ``cache/sources/``. Layout in the build:

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

from .errors import SourceError
from .fetch import fetch_verified, is_remote
from .recipe import Upstream
from .unpack import is_archive, strip_single_top, unpack


def resolve_url(upstream: Upstream, recipe_dir: Path) -> str:
    """The URL to fetch: remote and ``file://`` as written, plain paths inside the recipe."""
    url = upstream.url
    if is_remote(url) or url.startswith("file://"):
        return url
    if "://" in url:
        raise SourceError(f"upstream {url}: unsupported URL scheme (use https, http or file)")
    clean = posixpath.normpath(url)
    if posixpath.isabs(clean) or clean.startswith(".."):
        raise SourceError(
            f"upstream {url}: a path upstream must be relative to and inside the recipe "
            "directory (use file:// for a file elsewhere)"
        )
    return str(recipe_dir / clean)


def upstream_name(upstream: Upstream) -> str:
    base = upstream.rename or posixpath.basename(upstream.url.split("?", 1)[0].rstrip("/"))
    if not base or base in (".", "..") or "/" in base:
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
        url = resolve_url(upstream, recipe_dir)
        name = upstream_name(upstream)
        cached, hit = fetch_verified(
            url, upstream.sha256, cache_dir / "sources", timeout=timeout, error=SourceError
        )
        log(f"source {upstream.url}: sha256 {upstream.sha256} ok{' (cached)' if hit else ''}")
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
