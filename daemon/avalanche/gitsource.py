"""Git upstreams: a repository at the commit the recipe pins, fetched with pygit2 into a cached
bare mirror and written out as a tree, with its submodules at the commits it records.

Rules (a builder fetches as its own user, before any sandbox):

- the ref must be a full 40-character commit id; after fetching, the object must be that
  commit itself (an annotated tag's id, or a commit the repository does not have, is refused
  naming the pinned id and the one found: the tag's commit, or the repository's HEAD);
- URLs are ``https://``, ``http://`` or ``git://`` (never a path or ``file://``: the builder
  would publish whatever host repository it names); a submodule's URL too, a relative one
  (``../lib.git``) resolved against its parent's, as git does;
- one mirror per URL under ``cache/git/`` (shared with recipe repositories), fetched only when
  the commit is missing; a file lock keeps two builders of a host from fetching into it at
  once;
- the tree is written without ``.git``; links that lead out of it are refused; each submodule
  (a gitlink listed in ``.gitmodules``) is fetched the same way, at the commit its parent
  records, and written at its path, recursively.

Layout (boulder's ``clonedir``): the tree goes to ``$sourcedir/<name>`` and is copied into the
build: as the work directory itself when it is the first upstream, else into
``<work dir>/<clonedir or name>``.
"""

from __future__ import annotations

import posixpath
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pygit2

from daemon.formats.upstreams import GitUpstream

from .checkout import _locked, _open_mirror, mirror_path
from .errors import SourceError

SCHEMES = ("https", "http", "git")
_MODE_EXEC = 0o100755
_MODE_LINK = 0o120000
_MAX_DEPTH = 8


def check_url(url: str) -> None:
    if urlsplit(url).scheme.lower() not in SCHEMES or not urlsplit(url).netloc:
        raise SourceError(f"git upstream {url}: a farm build fetches git repositories only "
                          f"over {', '.join(s + '://' for s in SCHEMES)}")  # fmt: skip


def resolve_url(base: str, url: str) -> str:
    """A submodule's URL: as written, or relative to its parent repository's (git's rule)."""
    if not url.startswith(("./", "../")):
        return url
    parts = urlsplit(base)
    path = posixpath.normpath(posixpath.join(parts.path.rstrip("/"), url))
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def fetch_commit(cache_dir: Path, url: str, ref: str) -> tuple[Any, Any]:
    """The mirror of ``url`` and the commit ``ref`` in it, verified to be that commit."""
    check_url(url)
    if len(ref) != 40 or any(c not in "0123456789abcdef" for c in ref):
        raise SourceError(f"git upstream {url}: {ref!r} is not a commit id; pin the upstream "
                          "to the full 40-character id of the commit to build")  # fmt: skip
    path = mirror_path(cache_dir, url)
    with _locked(path):
        repo = _open_mirror(path, url)
        found = _get(repo, ref)
        if found is None:
            try:
                repo.remotes["origin"].fetch(["+refs/*:refs/*"])
            except pygit2.GitError as exc:
                raise SourceError(f"cannot fetch git upstream {url}: {exc}") from exc
            found = _get(repo, ref)
    if found is None:
        raise SourceError(f"git upstream {url}: the recipe pins commit {ref}, which the "
                          f"repository does not have (its HEAD is {_head(repo)}); correct "
                          "the commit id in the recipe")  # fmt: skip
    commit = found.peel(pygit2.Commit)
    if str(commit.id) != ref:
        raise SourceError(f"git upstream {url}: the recipe pins {ref}, which is not a commit "
                          f"but a {found.type_str} of commit {commit.id}; pin the commit id")
    return repo, commit


def _get(repo: Any, ref: str) -> Any:
    try:
        return repo.get(ref)
    except ValueError:
        return None


def _head(repo: Any) -> str:
    for name in ("HEAD", "refs/heads/main", "refs/heads/master"):
        try:
            return str(repo.references[name].resolve().target)
        except (KeyError, pygit2.GitError):
            continue
    heads = [r for r in repo.references if r.startswith("refs/heads/")]
    return str(repo.references[heads[0]].resolve().target) if heads else "(no branches)"


def write_upstream(upstream: GitUpstream, cache_dir: Path, dest: Path,
                   log: Callable[[str], None]) -> None:  # fmt: skip
    """Write the upstream's tree at its commit, submodules included, into ``dest``."""
    _write_repo(cache_dir, upstream.url, upstream.ref, dest, log, 0)


def _write_repo(cache_dir: Path, url: str, ref: str, dest: Path, log: Callable[[str], None],
                depth: int) -> None:  # fmt: skip
    if depth > _MAX_DEPTH:
        raise SourceError(f"git upstream {url}: submodules nest deeper than {_MAX_DEPTH}")
    repo, commit = fetch_commit(cache_dir, url, ref)
    log(f"source git {url}: commit {ref} ok" + (" (submodule)" if depth else ""))
    dest.mkdir(parents=True, exist_ok=True)
    links: list[tuple[str, str]] = []
    _write_tree(repo, commit.tree, dest, "", links, url)
    _check_links(dest, url)
    if not links:
        return
    urls = _submodule_urls(repo, commit.tree, url)
    for path, sub_ref in links:
        sub_url = urls.get(path)
        if sub_url is None:
            raise SourceError(f"git upstream {url}: submodule {path} is not in .gitmodules")
        _write_repo(cache_dir, resolve_url(url, sub_url), sub_ref, dest / path, log, depth + 1)


def _submodule_urls(repo: Any, tree: Any, url: str) -> dict[str, str]:
    try:
        blob = repo[(tree / ".gitmodules").id]
    except KeyError:
        return {}
    text = blob.data.decode("utf-8", "replace")
    paths: dict[str, str] = {}
    urls: dict[str, str] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line
            continue
        key, sep, value = line.partition("=")
        if sep and section.startswith("[submodule"):
            if key.strip() == "path":
                paths[section] = value.strip()
            elif key.strip() == "url":
                urls[section] = value.strip()
    return {paths[s]: urls[s] for s in paths if s in urls}


def _write_tree(repo: Any, tree: Any, dest: Path, prefix: str,
                links: list[tuple[str, str]], url: str) -> None:  # fmt: skip
    for entry in tree:
        name = entry.name
        if name in ("", ".", "..", ".git") or "/" in name:
            raise SourceError(f"git upstream {url}: unsafe name {name!r} in its tree")
        target = dest / name
        path = f"{prefix}{name}"
        if entry.type_str == "tree":
            target.mkdir(exist_ok=True)
            _write_tree(repo, repo[entry.id], target, f"{path}/", links, url)
        elif entry.type_str == "commit":
            links.append((path, str(entry.id)))
        elif entry.filemode == _MODE_LINK:
            target.symlink_to(repo[entry.id].data.decode("utf-8", "surrogateescape"))
        else:
            target.write_bytes(repo[entry.id].data)
            target.chmod(0o755 if entry.filemode == _MODE_EXEC else 0o644)


def _check_links(dest: Path, url: str) -> None:
    inside = dest.resolve()
    for link in (p for p in dest.rglob("*") if p.is_symlink()):
        target = link.resolve(strict=False)
        if target != inside and inside not in target.parents:
            raise SourceError(f"git upstream {url}: link {link.relative_to(dest)} leads out "
                              "of its tree")  # fmt: skip


def lay_out(tree: Path, workdir: Path, upstream: GitUpstream, first: bool) -> None:
    """Copy a written tree into the build (see the module docstring)."""
    target = workdir if first else workdir / (upstream.clonedir or upstream.name)
    shutil.copytree(tree, target, symlinks=True, dirs_exist_ok=True)
