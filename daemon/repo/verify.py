"""Check a published repository as any user would: signature, then every package's bytes.

Why a separate client check: a repository is only as trustworthy as what a user can verify
without vessel's help. Given a local path or an http(s) URL of the repository root, this
fetches ``CHANNEL/ARCH/current/index.json`` and its ``.minisig``, verifies the signature
with a public key (by default the repository's own ``minisign.pub`` — which only proves
integrity; pass the key you trust with ``--key`` to prove origin), checks that the signed
index is the one asked for (its channel and arch) and, given the generations this client
has seen (:mod:`daemon.repo.seen`), that it is not older than one already verified; then
reads every part the signed root lists and compares its size and sha256 with the root (only
the root is signed: the parts are covered by their hashes), and streams every listed package
and compares its size and sha256 with the index.

Provenance is checked too: every package must name the build environment that built it, and
that environment must be in the repository's signed listing of environments
(``environments/index.json``, signed with the same key). A package built on a builder host's
own system names none: it is not hermetic, a problem unless the caller accepts such packages
(``allow_not_hermetic``: the fallback of ``cairn up`` on a machine without ``mmdebstrap``).
"""

from __future__ import annotations

import asyncio
import hashlib
import posixpath
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import aiohttp

from daemon.buildenv.errors import BuildEnvError
from daemon.buildenv.manifest import ENV_DIR, LISTING, SIGNATURE_SUFFIX, decode_listing
from daemon.formats import layout
from daemon.formats.index import (
    IndexFormatError,
    IndexRoot,
    PartRef,
    assemble,
    read_part,
    read_root,
)
from daemon.package import Index, IndexEntry
from daemon.repo.seen import SeenGenerations, repository_id
from daemon.vessel import minisign
from events.errors import CairnError

_CHUNK = 256 * 1024


class VerifyError(CairnError):
    """The repository cannot be read at all (no index, no signature, no key)."""


@dataclass(frozen=True)
class Report:
    channel: str
    arch: str
    generation: int | None
    key_id: str
    checked: int
    problems: tuple[str, ...]
    #: The highest generation this client had verified before (None: none, or not asked).
    previous: int | None = None
    #: Packages built on a builder host's own system (accepted: ``allow_not_hermetic``).
    not_hermetic: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


class _Source:
    """Bytes by path relative to the repository root, from disk or over HTTP."""

    def __init__(self, location: str, session: aiohttp.ClientSession | None) -> None:
        self.is_http = urlsplit(location).scheme in ("http", "https")
        self.base = location.rstrip("/") + "/" if self.is_http else location
        self.session = session

    def resolve(self, relative: str) -> str:
        """The location of ``relative``; refuses a path that leaves the repository."""
        clean = posixpath.normpath(relative)
        if clean.startswith(("../", "/")) or clean == "..":
            raise VerifyError(f"{relative!r} points outside the repository")
        return urljoin(self.base, clean) if self.is_http else str(Path(self.base) / clean)

    async def read(self, relative: str) -> bytes:
        return b"".join([chunk async for chunk in self.chunks(relative)])

    async def chunks(self, relative: str) -> AsyncIterator[bytes]:
        where = self.resolve(relative)
        if not self.is_http:
            try:
                with open(where, "rb") as handle:  # noqa: ASYNC230 - local files, small reads
                    while chunk := handle.read(_CHUNK):
                        yield chunk
            except OSError as exc:
                raise VerifyError(f"cannot read {where}: {exc.strerror}") from None
            return
        assert self.session is not None
        try:
            async with self.session.get(where) as response:
                if response.status != 200:
                    raise VerifyError(f"{where} answered HTTP {response.status}")
                async for chunk in response.content.iter_chunked(_CHUNK):
                    yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise VerifyError(f"cannot fetch {where}: {exc}") from None


async def verify_repository(location: str, *, channel: str = "volatile", arch: str = "x86_64",
                            key_text: str | None = None, parallel: int = 8,
                            seen: SeenGenerations | None = None,
                            allow_rollback: bool = False,
                            allow_not_hermetic: bool = False) -> Report:
    """Verify one channel/arch of the repository at ``location`` (path or URL).

    With ``seen``, a signed index older than the highest generation seen before (for this
    repository, channel, arch and key) is a problem, unless ``allow_rollback`` (then it
    becomes the new record); a valid newer one raises the record.
    """
    timeout = aiohttp.ClientTimeout(sock_connect=10, sock_read=60)
    async with aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session:
        source = _Source(location, session)
        public = minisign.parse_public_key(
            key_text if key_text is not None else (await source.read(layout.PUBLIC_KEY)).decode())
        index_path = layout.index_path(channel, arch)
        data = await source.read(index_path)
        signature = (await source.read(layout.current_path(channel, arch) + "/"
                                       + layout.SIGNATURE)).decode(errors="replace")
        try:
            minisign.verify(public, data, signature)
        except minisign.SignatureError as exc:
            return Report(channel, arch, None, public.key_id_hex, 0,
                          (f"{index_path}: {exc}",))
        try:
            index = read_root(data)
        except IndexFormatError as exc:
            return Report(channel, arch, None, public.key_id_hex, 0,
                          (f"{index_path}: signed but not a valid index: {exc}",))
        if (index.channel, index.arch) != (channel, arch):
            return Report(channel, arch, index.generation, public.key_id_hex, 0,
                          (f"{index_path}: the signed index is for {index.channel}/"
                           f"{index.arch}, not {channel}/{arch}",))
        previous = None
        if seen is not None:
            key = (repository_id(location), channel, arch, public.key_id_hex)
            previous = await asyncio.to_thread(seen.highest, *key)
            if previous is not None and index.generation < previous and not allow_rollback:
                return Report(channel, arch, index.generation, public.key_id_hex, 0, (
                    f"{index_path}: generation {index.generation} is older than generation "
                    f"{previous}, which this client already verified: the channel was rolled "
                    "back or an old index is being replayed. If its operator reset the "
                    "channel, run again with --allow-rollback",), previous)
            await asyncio.to_thread(seen.record, *key, index.generation,
                                    replace=allow_rollback)
        index_dir = layout.current_path(channel, arch)
        index, problems = await _read_parts(source, index_dir, index, parallel)
        problems += await _check_packages(source, index_dir, index, parallel)
        provenance, host_built = await _check_environments(source, public, index)
        if not allow_not_hermetic:
            provenance += [f"{name}: not hermetic: built on a builder host's own system, in "
                           "no build environment" for name in host_built]
        return Report(channel, arch, index.generation, public.key_id_hex,
                      len(index.packages), tuple(problems + provenance), previous,
                      tuple(host_built))


async def _check_environments(source: _Source, public: minisign.PublicKey, index: Index
                              ) -> tuple[list[str], list[str]]:
    """Problems with the environments packages name, and the packages that name none."""
    named = {e.environment for e in index.packages if e.environment is not None}
    host_built = sorted(e.name for e in index.packages if e.environment is None)
    if not named:
        return [], host_built
    where = f"{ENV_DIR}/{LISTING}"
    try:
        raw = await source.read(where)
        minisign.verify(public, raw, (await source.read(where + SIGNATURE_SUFFIX)).decode(
            errors="replace"))
        known = {e.digest for e in decode_listing(raw, what=where).environments}
    except (VerifyError, minisign.SignatureError, BuildEnvError) as exc:
        return [f"{where}: cannot check the build environments packages name: {exc}"], \
            host_built
    unknown = [f"{e.name}: built in environment sha256:{e.environment}, which the "
               f"repository's {where} does not list"
               for e in index.packages if e.environment is not None and e.environment not in known]
    return sorted(unknown), host_built


async def _read_parts(source: _Source, index_dir: str, root: Index | IndexRoot,
                      parallel: int) -> tuple[Index, list[str]]:
    """The complete index of ``root``; a part that is missing or not the one the root lists
    is a problem (its packages are then not checked)."""
    if isinstance(root, Index):
        return root, []
    limit = asyncio.Semaphore(parallel)

    async def one(ref: PartRef) -> list[IndexEntry] | str:
        async with limit:
            try:
                return read_part(ref, await source.read(posixpath.join(index_dir, ref.uri)))
            except (VerifyError, IndexFormatError) as exc:
                return str(exc)

    results = await asyncio.gather(*(one(ref) for ref in root.parts))
    problems = [r for r in results if isinstance(r, str)]
    parts = [r for r in results if not isinstance(r, str)]
    return assemble(root, parts), problems


async def _check_packages(source: _Source, index_dir: str, index: Index,
                          parallel: int) -> list[str]:
    limit = asyncio.Semaphore(parallel)

    async def one(entry: IndexEntry) -> str | None:
        async with limit:
            try:
                where = posixpath.join(index_dir, entry.uri)
                digest, size = hashlib.sha256(), 0
                async for chunk in source.chunks(where):
                    digest.update(chunk)
                    size += len(chunk)
            except VerifyError as exc:
                return f"{entry.name}: {exc}"
        if size != entry.size:
            return f"{entry.name}: {entry.uri} has {size} bytes, the index says {entry.size}"
        if digest.hexdigest() != entry.sha256:
            return (f"{entry.name}: {entry.uri} has sha256 {digest.hexdigest()}, the index "
                    f"says {entry.sha256}")
        return None

    results = await asyncio.gather(*(one(e) for e in index.packages))
    return [r for r in results if r is not None]
