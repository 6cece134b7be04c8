"""What a builder does with build environments: pull the configured one, and make each
build's root from it and the build's dependencies.

:func:`open_environment` holds the environment in use for a build (pulled from vessel by
digest and verified the first time, from the read-only cache after); the build resolves its
dependencies against the channel and ``env.manifest.provides``; :func:`build_root` lays the
fetched dependency packages over the environment as a hard-link farm (:mod:`.buildroot`) and
removes it when the build is done. The root must not be inside a tree that is handed to the
build's user (its files are the cache's own inodes): put it beside the build tree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from . import buildroot
from .cache import DEFAULT_KEEP, CachedEnvironment, EnvironmentCache
from .errors import BuildEnvError
from .manifest import check_digest
from .pkgcache import PackageCache
from .remote import Origin, origin_with_key_file

#: The name a builder's configuration uses to ask for builds on its host's own system.
HOST = "host"


@dataclass(frozen=True)
class EnvironmentSetting:
    """A builder's environment: which digest, from which vessel, trusted with which key."""

    digest: str
    url: str
    key: Path
    keep: int = DEFAULT_KEEP
    timeout: float = 60.0

    def origin(self) -> Origin:
        return origin_with_key_file(self.url, self.key, self.timeout)


def setting(digest: str, url: str | None, key: Path | None, *, keep: int = DEFAULT_KEEP,
            timeout: float = 60.0) -> EnvironmentSetting:
    """Check a configured environment: a digest, vessel's URL and key are all required."""
    if url is None or key is None:
        raise BuildEnvError("a build environment needs vessel's URL and public key to pull "
                            "it by digest (environment_url, environment_key)")
    return EnvironmentSetting(check_digest(digest), url, key, keep, timeout)


@contextmanager
def open_environment(chosen: EnvironmentSetting, cache_dir: Path,
                     line: Callable[[str], None]) -> Iterator[CachedEnvironment]:
    """The environment, verified and unpacked, held in use (never evicted) for the block."""
    cache = EnvironmentCache(cache_dir, keep=chosen.keep, line=line)
    with cache.use(chosen.digest, chosen.origin()) as env:
        line(f"environment {env.manifest.name} sha256:{env.digest} "
             f"({len(env.manifest.packages)} packages)")
        yield env


@contextmanager
def build_root(env: CachedEnvironment, packages: Sequence[tuple[Path, str]],
               package_cache: Path, dest: Path, line: Callable[[str], None]) -> Iterator[Path]:
    """``dest`` = ``env`` + ``packages`` (archive path, verified sha256) for the block."""
    cache = PackageCache(package_cache)
    with cache.using():
        unpacked = [cache.unpacked(path, sha) for path, sha in packages]
        stats = buildroot.assemble(env.root, unpacked, dest)
    cache.evict()
    line(f"build root: {env.manifest.name} + {len(packages)} package(s), {stats.linked} "
         f"links, {stats.copied} copies, {stats.seconds:.2f} s")
    for path in stats.replaced:
        line(f"build root: a dependency replaces the environment's {path}")
    try:
        yield dest
    finally:
        if dest.exists():
            buildroot.remove(dest)
