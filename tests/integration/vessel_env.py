"""A vessel of its own for one test: state in ``tmp_path``, a real database, a real artefact
server on 127.0.0.1, and the importer the service uses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daemon.package import Index
from daemon.vessel import store
from daemon.vessel.config import VesselConfig
from daemon.vessel.importer import Importer, ImportOutcome
from daemon.vessel.ownership import DeclaredOwners
from daemon.vessel.repository import Repository
from events import outbox
from events.envelope import decode_event, new_event
from events.sqlite import Connection, Database
from tests.support.index import read_index
from tests.unit.vessel.builders import ArtefactServer, Pkg, build_done


@dataclass
class Env:
    config: VesselConfig
    repo: Repository
    db: Database
    server: ArtefactServer
    importer: Importer
    outcomes: list[ImportOutcome] = field(default_factory=list)

    async def emit(self, conn: Connection, outcome: ImportOutcome) -> None:
        """What the service shell does: the event goes into the outbox, same transaction."""
        self.outcomes.append(outcome)
        await outbox.add(conn, new_event(outcome.event_payload(), source="vessel"))

    async def outbox_types(self) -> list[str]:
        rows = await self.db.fetchall("SELECT body FROM cairn_outbox ORDER BY seq")
        return [decode_event(bytes(r[0])).type for r in rows]

    def current_index(self, channel: str = "volatile", arch: str = "x86_64") -> Index:
        return read_index(self.config.layout.current(channel, arch) / "index.json")


@asynccontextmanager
async def environment(tmp_path: Path, *, owners: DeclaredOwners | None = None,
                      **settings: Any) -> AsyncIterator[Env]:
    """``settings`` are :class:`VesselConfig` fields (limits, ``verify_provides``)."""
    config = VesselConfig(state_dir=tmp_path / "vessel", read_timeout=5.0, connect_timeout=2.0,
                          **settings)
    repo = Repository.open(config)
    async with Database.open(config.layout.db, store.MIGRATIONS) as db, \
            ArtefactServer().running() as server:
        await repo.reconcile(db)
        yield Env(config, repo, db, server, Importer(repo, owners=owners))


async def import_pkgs(env: Env, pkgs: list[Pkg], *, release: int = 1, task_id: int = 1,
                      channel: str = "volatile") -> ImportOutcome:
    artefacts = [env.server.add(p) for p in pkgs]
    build = build_done(artefacts, source=pkgs[0].source or pkgs[0].name, release=release,
                       task_id=task_id, channel=channel, environment=pkgs[0].environment)
    return await env.importer.import_build(env.db, build, env.emit)
