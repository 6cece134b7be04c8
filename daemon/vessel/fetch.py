"""Download a build's artefacts: in parallel, bounded, streamed to disk, size and hash checked.

Why stream to a file and stop early: an artefact can be gigabytes, and a hostile or broken
builder may send more than it declared; the download stops at the first byte beyond the
declared size (or the configured limit) instead of filling the disk. Files go to vessel's own
state directory (``STATE/tmp``), never into the served tree; the importer moves them into
the pool only once the whole build passed.

What is retryable: a URL that does not answer (connection refused, timeout, reset), a 5xx,
408 or 429 — the builder may be back later. A 4xx, a size or hash mismatch is the build's
fault and final.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from daemon.vessel.config import VesselConfig
from daemon.vessel.errors import ImportRefused
from events.payloads import Artefact

_CHUNK = 256 * 1024
_RETRYABLE_STATUS = frozenset({408, 429})


@dataclass(frozen=True)
class Downloaded:
    artefact: Artefact
    path: Path


async def download_all(
    artefacts: list[Artefact], dest: Path, config: VesselConfig,
    session: aiohttp.ClientSession | None = None,
) -> list[Downloaded]:
    """Fetch every artefact into ``dest``; the first failure cancels the others and raises."""
    for artefact in artefacts:
        _check_declared(artefact, config)
    timeout = aiohttp.ClientTimeout(sock_connect=config.connect_timeout,
                                    sock_read=config.read_timeout)
    limit = asyncio.Semaphore(config.download_parallelism)
    owned = session is None
    client = session or aiohttp.ClientSession(timeout=timeout, auto_decompress=False)
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(_one(client, limit, a, dest / f"{i}.part", config))
                     for i, a in enumerate(artefacts)]
    except* ImportRefused as failures:
        raise _first(failures) from None
    finally:
        if owned:
            await client.close()
    return [task.result() for task in tasks]


def _first(group: BaseExceptionGroup[ImportRefused]) -> ImportRefused:
    for exc in group.exceptions:
        if isinstance(exc, ImportRefused):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            return _first(exc)
    raise group  # pragma: no cover - except* only hands us ImportRefused


def _check_declared(artefact: Artefact, config: VesselConfig) -> None:
    if urlsplit(artefact.url).scheme not in ("http", "https"):
        raise ImportRefused(f"URL {artefact.url!r} is not http(s)", artefact=artefact.filename)
    if artefact.size > config.max_artefact_bytes:
        raise ImportRefused(
            f"declares {artefact.size} bytes, over the limit of {config.max_artefact_bytes}",
            artefact=artefact.filename)


async def _one(client: aiohttp.ClientSession, limit: asyncio.Semaphore, artefact: Artefact,
               path: Path, config: VesselConfig) -> Downloaded:
    label = artefact.filename
    async with limit:
        try:
            async with client.get(artefact.url, allow_redirects=False) as response:
                _check_status(response, artefact)
                declared = response.content_length
                if declared is not None and declared != artefact.size:
                    raise ImportRefused(
                        f"server sends {declared} bytes but the build declared "
                        f"{artefact.size}", artefact=label)
                digest = await _stream(response, path, artefact, config)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ImportRefused(f"download from {artefact.url} failed: "
                                f"{type(exc).__name__}: {exc}",
                                retryable=True, artefact=label) from None
        except OSError as exc:
            raise ImportRefused(f"cannot store the download: {exc}", retryable=True,
                                artefact=label) from None
    if digest != artefact.sha256:
        raise ImportRefused(f"sha256 is {digest} but the build declared {artefact.sha256}",
                            artefact=label)
    return Downloaded(artefact, path)


def _check_status(response: aiohttp.ClientResponse, artefact: Artefact) -> None:
    status = response.status
    if status == 200:
        return
    retryable = status >= 500 or status in _RETRYABLE_STATUS
    raise ImportRefused(f"{artefact.url} answered HTTP {status} {response.reason or ''}".rstrip(),
                        retryable=retryable, artefact=artefact.filename)


async def _stream(response: aiohttp.ClientResponse, path: Path, artefact: Artefact,
                  config: VesselConfig) -> str:
    """Write the body to ``path``; stop at the first byte over the declared size or limit.

    No fsync here: the pool copy is fsynced when it is placed, and a crash loses only a
    temporary file that the next start clears anyway.
    """
    ceiling = min(artefact.size, config.max_artefact_bytes)
    digest = hashlib.sha256()
    received = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "wb") as out:
        async for chunk in response.content.iter_chunked(_CHUNK):
            received += len(chunk)
            if received > ceiling:
                raise ImportRefused(
                    f"sent more than the {ceiling} bytes allowed (declared {artefact.size}, "
                    f"limit {config.max_artefact_bytes})", artefact=artefact.filename)
            digest.update(chunk)
            out.write(chunk)
    if received != artefact.size:
        raise ImportRefused(f"sent {received} bytes but the build declared {artefact.size}",
                            artefact=artefact.filename)
    return digest.hexdigest()
