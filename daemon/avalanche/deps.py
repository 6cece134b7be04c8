"""Build dependencies from the repository index that vessel publishes.

:func:`resolve` is pure: given an :class:`daemon.package.Index` and the recipe's
``builddeps`` + ``checkdeps`` it picks one providing package per dependency (the highest
release/build release; ties by name), then the providers of those packages' ``depends``
transitively. Without a build environment, a direct dependency that nothing provides fails
the build naming it, and a transitive one that the index does not provide
(``soname(libc.so.6(x86_64))``) is assumed to come from the host and is only reported. With
one (``provided``: the environment's provides), a dependency resolves against the channel
first, then the environment, and one that neither provides, direct or transitive, is
unresolvable, named: nothing is ever taken from the host.

:func:`install` downloads the chosen packages (``uri`` is relative to the index URL), checks
sha256 and size, and unpacks them into the build root's ``deps/``; :func:`environment` points
``PATH``, ``PKG_CONFIG_PATH``, ``CPATH``, ``LIBRARY_PATH`` and ``LD_LIBRARY_PATH`` into it.
"""

from __future__ import annotations

import hashlib
import os
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from daemon.formats import index as index_format
from daemon.package import Index, IndexEntry, name_provider
from events.payloads import Outcome

from .errors import DependencyError
from .fetch import fetch_verified, local_path
from .unpack import unpack

_LIBDIRS = ("usr/lib", "usr/lib64", "lib")


@dataclass(frozen=True)
class Resolution:
    """The packages to install, and the needs left to the host or met by the environment."""

    packages: tuple[IndexEntry, ...]
    from_host: tuple[str, ...] = ()
    from_environment: tuple[str, ...] = ()


def load_index(url: str, *, timeout: float, cache_dir: Path | None = None) -> Index:
    """Fetch and decode the index at ``url`` (http(s), ``file://`` or a path): its root, then
    every part it lists, each checked against the root's sha256 (:mod:`daemon.formats.index`).

    With ``cache_dir``, parts are kept there by hash: a part's name is its content, so a
    cached part is never stale, and a build fetches only the parts that changed."""
    try:
        return index_format.load(_read(url, timeout),
                                 lambda uri: _part(url, uri, timeout, cache_dir))
    except OSError as exc:
        raise DependencyError(
            f"cannot fetch repository index {url}: {exc}", outcome=Outcome.INFRASTRUCTURE
        ) from exc
    except index_format.IndexFormatError as exc:
        raise DependencyError(
            f"repository index {url} is malformed: {exc}", outcome=Outcome.INFRASTRUCTURE
        ) from exc


def _read(url: str, timeout: float) -> bytes:
    path = local_path(url)
    if path is not None:
        return path.read_bytes()
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
        data: bytes = response.read()
        return data


def _part(index_url: str, uri: str, timeout: float, cache_dir: Path | None) -> bytes:
    """A part's bytes, from the cache when there; the caller checks them against the root."""
    cached = None if cache_dir is None else cache_dir / "index-parts" / PurePosixPath(uri).name
    if cached is not None and cached.is_file():
        return cached.read_bytes()
    data = _read(urllib.parse.urljoin(index_url, uri), timeout)
    if cached is not None and hashlib.sha256(data).hexdigest() + ".json" == cached.name:
        cached.parent.mkdir(parents=True, exist_ok=True)
        temporary = cached.with_name(f".{cached.name}.{os.getpid()}.tmp")
        temporary.write_bytes(data)
        os.replace(temporary, cached)
    return data


def provider_map(index: Index, arch: str) -> dict[str, list[IndexEntry]]:
    """Provider string -> the entries offering it (by provides, ``name(x)`` and plain name)."""
    result: dict[str, list[IndexEntry]] = {}
    for entry in index.packages:
        if entry.arch not in (arch, "noarch"):
            continue
        for key in {*entry.provides, entry.name, name_provider(entry.name)}:
            result.setdefault(key, []).append(entry)
    return result


def _best(entries: Sequence[IndexEntry]) -> IndexEntry:
    top = max((e.release, e.build_release) for e in entries)
    return min((e for e in entries if (e.release, e.build_release) == top), key=lambda e: e.name)


def resolve(index: Index, wanted: Sequence[str], arch: str,
            provided: frozenset[str] | None = None) -> Resolution:
    """Pick the packages that satisfy ``wanted`` and their depends (see module docstring)."""
    providers = provider_map(index, arch)

    def in_environment(dep: str) -> bool:
        return provided is not None and (dep in provided or name_provider(dep) in provided)

    missing = [dep for dep in wanted if dep not in providers and not in_environment(dep)]
    if missing:
        where = f"repository index {index.channel}/{index.arch} (generation {index.generation})"
        if provided is not None:
            where += " or the build environment"
        raise DependencyError(
            f"build dependency {', '.join(missing)} is unresolvable: not provided by any "
            f"package in {where}; build and publish its provider first"
        )
    chosen: dict[str, IndexEntry] = {}
    from_host: list[str] = []
    from_env: list[str] = []
    unresolvable: list[str] = []
    queue = list(wanted)
    seen: set[str] = set()
    while queue:
        dep = queue.pop(0)
        if dep in seen:
            continue
        seen.add(dep)
        if dep not in providers:
            if provided is None:
                from_host.append(dep)
            elif in_environment(dep):
                from_env.append(dep)
            else:
                unresolvable.append(dep)
            continue
        entry = _best(providers[dep])
        if entry.name not in chosen:
            chosen[entry.name] = entry
            queue.extend(entry.depends)
    if unresolvable:
        raise DependencyError(
            f"dependency {', '.join(sorted(unresolvable))} (needed by a build dependency's "
            "package) is unresolvable: neither the channel nor the build environment provides it"
        )
    ordered = tuple(sorted(chosen.values(), key=lambda e: e.name))
    return Resolution(packages=ordered, from_host=tuple(sorted(from_host)),
                      from_environment=tuple(sorted(from_env)))


def fetch(
    resolution: Resolution,
    index_url: str,
    cache_dir: Path,
    *,
    timeout: float,
    log: Callable[[str], None],
) -> list[tuple[IndexEntry, Path, bool]]:
    """Download (or find cached) and verify every chosen package; return each with its path
    and whether it was cached."""
    fetched: list[tuple[IndexEntry, Path, bool]] = []
    for entry in resolution.packages:
        url = urllib.parse.urljoin(index_url, entry.uri)
        path, hit = fetch_verified(
            url, entry.sha256, cache_dir / "packages", timeout=timeout, error=DependencyError
        )
        if path.stat().st_size != entry.size:
            raise DependencyError(
                f"package {entry.name} at {url} is {path.stat().st_size} bytes, the index "
                f"says {entry.size}"
            )
        fetched.append((entry, path, hit))
    for dep in resolution.from_host:
        log(f"dependency {dep} is not in the repository index; using the host's")
    for dep in resolution.from_environment:
        log(f"dependency {dep} is provided by the build environment")
    return fetched


def install(
    resolution: Resolution,
    index_url: str,
    deps_root: Path,
    cache_dir: Path,
    *,
    timeout: float,
    log: Callable[[str], None],
) -> None:
    """Download, verify and unpack every chosen package into ``deps_root``."""
    deps_root.mkdir(parents=True, exist_ok=True)
    for entry, path, hit in fetch(resolution, index_url, cache_dir, timeout=timeout, log=log):
        unpack(path, deps_root, name=f"{entry.name}.tar.zst")
        log(f"dependency {describe(entry)} installed{' (cached)' if hit else ''}")


def describe(entry: IndexEntry) -> str:
    """``name-version-release-buildrelease``, as logs name a package."""
    return f"{entry.name}-{entry.version}-{entry.release}-{entry.build_release}"


def environment(deps_root: Path, base: Mapping[str, str]) -> dict[str, str]:
    """``base`` with search paths pointing into ``deps_root`` first."""

    def paths(*rels: str) -> list[str]:
        return [str(deps_root / rel) for rel in rels]

    def prepend(key: str, items: list[str]) -> str:
        old = base.get(key, "")
        return ":".join(items + ([old] if old else []))

    libs = paths(*_LIBDIRS)
    env = dict(base)
    env["PATH"] = prepend("PATH", paths("usr/bin", "usr/sbin", "bin"))
    env["PKG_CONFIG_PATH"] = prepend(
        "PKG_CONFIG_PATH", [f"{p}/pkgconfig" for p in libs] + paths("usr/share/pkgconfig")
    )
    env["CPATH"] = prepend("CPATH", paths("usr/include"))
    env["LIBRARY_PATH"] = prepend("LIBRARY_PATH", libs)
    env["LD_LIBRARY_PATH"] = prepend("LD_LIBRARY_PATH", libs)
    return env
