"""Learning what the repository already publishes, on summit's first start against it.

Summit normally learns publications from ``package-published`` events. A summit started
against a repository that already has packages (a new summit, a restored one) reads the
channel's signed index once instead, so it does not plan builds of what is already there.
"""

from __future__ import annotations

import aiohttp
import msgspec
import structlog

from daemon.package import Index
from daemon.summit import store
from events.sqlite import Database

log = structlog.get_logger("cairn.summit")


async def seed_published(db: Database, index_url: str | None, channel: str, arch: str) -> None:
    """Record every package of ``index_url`` as published, unless summit already knows of
    publications in that channel and arch (or there is no repository to ask)."""
    if index_url is None or await store.has_publications(db, channel, arch):
        return
    try:
        async with aiohttp.ClientSession() as session, session.get(
                index_url, timeout=aiohttp.ClientTimeout(total=30)) as response:
            if response.status == 404:
                return
            response.raise_for_status()
            index = msgspec.json.decode(await response.read(), type=Index)
    except (aiohttp.ClientError, TimeoutError, msgspec.DecodeError) as exc:
        log.warning("summit.index_unavailable", url=index_url, error=str(exc))
        return
    async with db.transaction() as conn:
        for entry in index.packages:
            await store.record_publication(conn, channel, arch, entry.source, entry.release,
                                           (entry.name, *entry.provides))
    log.info("summit.seeded_index", url=index_url, packages=len(index.packages))
