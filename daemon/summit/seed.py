"""Learning what the repository already publishes, on summit's first start against it.

Summit normally learns publications from ``package-published`` events. A summit started
against a repository that already has packages (a new summit, a restored one) reads the
channel's signed index once instead, so it does not plan builds of what is already there:
its root, then every part the root lists (each checked against its sha256).
"""

from __future__ import annotations

import asyncio
from urllib.parse import urljoin

import aiohttp
import structlog

from daemon.formats.index import IndexFormatError, PartRef, assemble, read_part, read_root
from daemon.package import Index, IndexEntry
from daemon.summit import store
from events.sqlite import Database

log = structlog.get_logger("cairn.summit")


async def seed_published(db: Database, index_url: str | None, channel: str, arch: str) -> None:
    """Record every package of ``index_url`` as published, unless summit already knows of
    publications in that channel and arch (or there is no repository to ask)."""
    if index_url is None or await store.has_publications(db, channel, arch):
        return
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            root = await _get(session, index_url)
            if root is None:
                return
            index = await _assemble(session, index_url, root)
    except (aiohttp.ClientError, TimeoutError, IndexFormatError) as exc:
        log.warning("summit.index_unavailable", url=index_url, error=str(exc))
        return
    async with db.transaction() as conn:
        for entry in index.packages:
            await store.record_publication(conn, channel, arch, entry.source, entry.release,
                                           (entry.name, *entry.provides))
    log.info("summit.seeded_index", url=index_url, packages=len(index.packages))


async def _get(session: aiohttp.ClientSession, url: str) -> bytes | None:
    async with session.get(url) as response:
        if response.status == 404:
            return None
        response.raise_for_status()
        return await response.read()


async def _assemble(session: aiohttp.ClientSession, index_url: str, data: bytes) -> Index:
    root = read_root(data)
    if isinstance(root, Index):
        return root

    async def part(ref: PartRef) -> list[IndexEntry]:
        body = await _get(session, urljoin(index_url, ref.uri))
        if body is None:
            raise IndexFormatError(f"part {ref.uri} of {index_url} is missing")
        return read_part(ref, body)

    return assemble(root, await asyncio.gather(*(part(ref) for ref in root.parts)))
