"""Build environments in vessel: stored content-addressed beside the channels, signed, listed.

Layout (served read-only like the rest of ``STATE/repo``; the formats are in
:mod:`daemon.buildenv.manifest`)::

    STATE/repo/environments/<digest>.tar.zst           the archive, named by its sha256
    STATE/repo/environments/<digest>.json{,.minisig}   its record, signed with vessel's key
    STATE/repo/environments/index.json{,.minisig}      the listing, signed

Pushing (:meth:`EnvironmentStore.push`) is an operator action on vessel's host, like
``promote``: the archive is read whole and checked (safe members, a manifest first, size), then
placed by rename after an fsync; the record and the listing are written atomically and signed.
Pushes serialise on a file lock, so a push while vessel runs is safe. Pushing an environment
again changes nothing. A file's name proves what it must contain; nothing is ever rewritten
except the listing.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from daemon.buildenv import archive as envarchive
from daemon.buildenv.errors import BuildEnvError
from daemon.buildenv.manifest import (
    ENV_DIR,
    LISTING,
    RECORD_SUFFIX,
    SIGNATURE_SUFFIX,
    EnvListing,
    EnvRecord,
    EnvSummary,
    archive_name,
    check_digest,
    decode_listing,
    decode_record,
    encode,
    record_name,
    resolve,
)
from daemon.vessel import minisign
from daemon.vessel.config import Layout
from daemon.vessel.generations import write_atomic
from daemon.vessel.pool import fsync_dir


def env_dir(layout: Layout) -> Path:
    return layout.root / ENV_DIR


class EnvironmentStore:
    """vessel's environments; ``key`` signs records and the listing."""

    def __init__(self, layout: Layout, key: minisign.SecretKey) -> None:
        self.layout = layout
        self.key = key
        self.dir = env_dir(layout)

    def push(self, archive: Path) -> tuple[EnvRecord, bool]:
        """Store ``archive``; return its record and whether it was new."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with self._lock():
            digest = envarchive.sha256_file(archive)
            record_path = self.dir / record_name(digest)
            if record_path.is_file():
                return self.record(digest), False
            manifest = envarchive.read_manifest(archive)
            _check_members(archive)
            record = EnvRecord(digest=digest, size=archive.stat().st_size, manifest=manifest)
            final = self.dir / archive_name(digest)
            if not final.is_file():
                tmp = self.dir / f".{final.name}.{os.getpid()}.tmp"
                shutil.copyfile(archive, tmp)
                if envarchive.sha256_file(tmp) != digest:
                    tmp.unlink()
                    raise BuildEnvError(f"{archive} changed while it was being pushed")
                os.chmod(tmp, 0o644)
                _fsync(tmp)
                os.rename(tmp, final)
            body = encode(record)
            trusted = (f"timestamp:{int(datetime.now(UTC).timestamp())}\tenvironment:"
                       f"{manifest.name}\tsha256:{digest}")
            signature = minisign.sign(self.key, body, trusted_comment=trusted,
                                      untrusted_comment=f"cairn environment {manifest.name}")
            write_atomic(record_path.with_name(record_path.name + SIGNATURE_SUFFIX),
                         signature.encode())
            write_atomic(record_path, body)
            self._relist(pushed={digest: _now()})
            return record, True

    def record(self, digest: str) -> EnvRecord:
        path = self.dir / record_name(check_digest(digest))
        try:
            return decode_record(path.read_bytes(), what=str(path))
        except FileNotFoundError:
            raise BuildEnvError(f"vessel has no environment sha256:{digest}") from None

    def listing(self) -> EnvListing:
        try:
            raw = (self.dir / LISTING).read_bytes()
        except FileNotFoundError:
            return EnvListing(environments=[])
        return decode_listing(raw, what=str(self.dir / LISTING))

    def resolve(self, ref: str) -> str:
        return resolve(self.listing(), ref)

    def _relist(self, pushed: dict[str, str]) -> None:
        """Rewrite the signed listing from the records on disk (push order kept)."""
        previous = {e.digest: e.pushed for e in self.listing().environments}
        summaries = []
        for path in sorted(self.dir.glob(f"*{RECORD_SUFFIX}")):
            if path.name.startswith(".") or path.name == LISTING:
                continue
            record = decode_record(path.read_bytes(), what=str(path))
            m = record.manifest
            summaries.append(EnvSummary(
                digest=record.digest, name=m.name, arch=m.arch, size=record.size,
                packages=len(m.packages), provides=len(m.provides),
                pushed=previous.get(record.digest) or pushed.get(record.digest) or _now()))
        summaries.sort(key=lambda s: (s.pushed, s.digest))
        body = encode(EnvListing(environments=summaries))
        trusted = f"timestamp:{int(datetime.now(UTC).timestamp())}\tfile:{ENV_DIR}/{LISTING}"
        signature = minisign.sign(self.key, body, trusted_comment=trusted,
                                  untrusted_comment="cairn environments")
        write_atomic(self.dir / (LISTING + SIGNATURE_SUFFIX), signature.encode())
        write_atomic(self.dir / LISTING, body)

    @contextmanager
    def _lock(self) -> Iterator[None]:
        fd = os.open(self.layout.state_dir / "environments.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _check_members(archive: Path) -> None:
    """Read the whole archive once: every member must be safe to unpack."""
    for _tar, member in envarchive.iter_members(archive):
        envarchive.check_member_name(member.name)
        if not (member.isdir() or member.isreg() or member.issym()):
            raise BuildEnvError(f"{archive.name}: member {member.name} is neither a file, a "
                                "directory nor a symlink")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(path.parent)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
