"""A builder's cache of environments: pulled by digest, verified, unpacked once, read-only.

Layout::

    CACHE/envs/<digest>/root/        the unpacked tree (no write bits)
    CACHE/envs/<digest>/record.json  the verified record
    CACHE/envs/<digest>/last-used    its mtime is the last use (LRU)
    CACHE/locks/<digest>.use         shared flock while a build uses it; eviction needs it free
    CACHE/locks/<digest>.pull        exclusive flock while one process pulls it
    CACHE/tmp/                       downloads and unpacks in progress

Pulling (:meth:`EnvironmentCache.use`): the record ``environments/<digest>.json`` and its
``.minisig`` are fetched from vessel and the signature checked with vessel's public key, then
the archive is downloaded and its size and sha256 checked against the record before it is
unpacked. An entry appears (by rename) only complete, so a crash leaves at most litter in
``tmp/``, cleared by the next pull. At most ``keep`` entries stay; the least recently used go
first, never one whose ``.use`` lock someone holds. Locks are ``flock``s, so concurrent builds
and builder processes on one host share the cache safely.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from . import archive
from .errors import BuildEnvError
from .manifest import (
    EnvManifest,
    EnvRecord,
    archive_name,
    check_digest,
    decode_record,
    encode,
    env_url,
)
from .remote import Origin, check_size_digest, download, fetch_record

DEFAULT_KEEP = 3


@dataclass(frozen=True)
class CachedEnvironment:
    digest: str
    root: Path
    record: EnvRecord

    @property
    def manifest(self) -> EnvManifest:
        return self.record.manifest


@dataclass(frozen=True)
class CacheEntry:
    digest: str
    name: str
    last_used: float
    in_use: bool


class EnvironmentCache:
    """See the module docstring. ``keep`` bounds how many unpacked environments stay."""

    def __init__(self, root: Path, *, keep: int = DEFAULT_KEEP,
                 line: Callable[[str], None] | None = None) -> None:
        if keep < 1:
            raise BuildEnvError("the environment cache must keep at least one environment")
        self.root = root
        self.keep = keep
        self._line = line or (lambda _text: None)
        for sub in ("envs", "locks", "tmp"):
            (root / sub).mkdir(parents=True, exist_ok=True)

    def _dir(self, digest: str) -> Path:
        return self.root / "envs" / check_digest(digest)

    def has(self, digest: str) -> bool:
        return (self._dir(digest) / "record.json").is_file()

    @contextmanager
    def use(self, digest: str, origin: Origin | None = None) -> Iterator[CachedEnvironment]:
        """The environment ``digest``, pulled from ``origin`` if not cached, held in use
        (never evicted) until the block ends."""
        digest = check_digest(digest)
        with _flock(self.root / "locks" / f"{digest}.use", fcntl.LOCK_SH):
            if not self.has(digest):
                if origin is None:
                    raise BuildEnvError(f"environment sha256:{digest} is not in the cache "
                                        f"{self.root} and no vessel to pull it from was given")
                self._pull(digest, origin)
            entry = self._dir(digest)
            (entry / "last-used").touch()
            record = decode_record((entry / "record.json").read_bytes(),
                                   what=f"cached record of {digest}")
            yield CachedEnvironment(digest, entry / "root", record)
        self.evict()

    def add(self, archive_path: Path, record: EnvRecord) -> CachedEnvironment:
        """Put a local archive (a fresh ``cairn buildenv build``) in the cache; it is checked
        against ``record`` like a download."""
        digest = check_digest(record.digest)
        with _flock(self.root / "locks" / f"{digest}.pull", fcntl.LOCK_EX):
            if not self.has(digest):
                _check_archive(archive_path, record)
                self._install(archive_path, record)
        entry = self._dir(digest)
        (entry / "last-used").touch()
        return CachedEnvironment(digest, entry / "root", record)

    def _pull(self, digest: str, origin: Origin) -> None:
        with _flock(self.root / "locks" / f"{digest}.pull", fcntl.LOCK_EX):
            if self.has(digest):
                return
            record = fetch_record(origin, digest)
            url = env_url(origin.url, archive_name(digest))
            self._line(f"environment {record.manifest.name} sha256:{digest}: downloading "
                       f"{record.size / 1e6:.1f} MB from {url}")
            tmp = self.root / "tmp" / f"{digest}.{os.getpid()}.tar.zst"
            try:
                download(url, tmp, record, origin.timeout)
                self._install(tmp, record)
            finally:
                tmp.unlink(missing_ok=True)

    def _install(self, archive_path: Path, record: EnvRecord) -> None:
        digest = record.digest
        staging = self.root / "tmp" / f"{digest}.{os.getpid()}.{time.monotonic_ns()}"
        try:
            staging.mkdir()
            self._line(f"environment {record.manifest.name}: unpacking "
                       f"{record.manifest.files} files")
            inner = archive.unpack(archive_path, staging / "root")
            if inner != record.manifest:
                raise BuildEnvError(f"environment sha256:{digest}: the manifest inside the "
                                    "archive differs from its signed record")
            (staging / "record.json").write_bytes(encode(record))
            (staging / "last-used").touch()
            os.rename(staging, self._dir(digest))
        finally:
            _remove(staging)

    def entries(self) -> list[CacheEntry]:
        found = []
        for entry in sorted((self.root / "envs").iterdir()):
            try:
                record = decode_record((entry / "record.json").read_bytes(), what=str(entry))
                last = (entry / "last-used").stat().st_mtime
            except (OSError, BuildEnvError):
                continue
            found.append(CacheEntry(entry.name, record.manifest.name, last,
                                    _locked(self.root / "locks" / f"{entry.name}.use")))
        return found

    def evict(self, keep: int | None = None) -> list[str]:
        """Remove the least recently used entries beyond ``keep``; skip those in use."""
        keep = self.keep if keep is None else keep
        ranked = sorted(self.entries(), key=lambda e: e.last_used, reverse=True)
        evicted: list[str] = []
        for entry in ranked[keep:]:
            lock = self.root / "locks" / f"{entry.digest}.use"
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # in use: it stays until the build using it ends
                trash = self.root / "tmp" / f"evicted-{entry.digest}.{time.monotonic_ns()}"
                os.rename(self._dir(entry.digest), trash)
                evicted.append(entry.digest)
            finally:
                os.close(fd)
            _remove(trash)
            self._line(f"environment {entry.name} sha256:{entry.digest} evicted from the cache")
        return evicted


def _check_archive(path: Path, record: EnvRecord) -> None:
    check_size_digest(str(path), path.stat().st_size, archive.sha256_file(path), record)


@contextmanager
def _flock(path: Path, operation: int) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, operation)
        yield
    finally:
        os.close(fd)


def _locked(path: Path) -> bool:
    """Whether someone holds ``path``'s lock (checked without waiting)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _remove(path: Path) -> None:
    if path.exists():
        archive.make_writable(path)
        shutil.rmtree(path, ignore_errors=True)
