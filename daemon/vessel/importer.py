"""Import a finished build: download, verify, pool, publish a new generation — all or nothing.

The API the service shell calls (it owns the bus, the outbox and the inbox)::

    repo = Repository.open(config)            # once, on start
    await repo.reconcile(db)                  # once, on start, before consuming
    importer = Importer(repo)

    outcome = await importer.import_build(db, build, emit)

``emit(conn, outcome)`` is awaited **inside** the one transaction that also writes the
generation (``outcome.published``) or, for a refusal, inside a transaction of its own
(``outcome.refused``): the shell writes its inbox claim and its outbox row there
(``events.outbox.add(conn, ...)``), so the event and the state change commit together or
not at all. For a duplicate build (already imported, ``outcome.duplicate``) nothing in the
repository changes; ``emit`` still runs (a transaction of its own) so the shell can claim the
event and, if it wants, announce the publication again — consumers deduplicate.
``import_build`` raises only for bugs or a database failure (then nothing committed: let the
bus redeliver); every refusal is an :class:`ImportRefused` inside the outcome.

For finer control the same steps are public: :meth:`Importer.prepare` (downloads and
inspects, no database, may raise ImportRefused), :meth:`Importer.commit` (inside the caller's
``db.transaction()``; it raises ImportRefused *before* writing anything, so the caller may
still write its refusal rows in that transaction), then :meth:`Importer.finish` after the
commit (moves ``current``, prunes) and :meth:`Importer.discard` in every case.

``on_step`` is called with a step name at each durable point (``downloaded``, ``pooled``,
``written``, ``committed``, ``switched``): the crash tests kill the process there.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import aiohttp

from daemon.provides import own_provides
from daemon.vessel import pool, store
from daemon.vessel.archive import Inspected, check_against_build, inspect_archive
from daemon.vessel.claims import check_provides
from daemon.vessel.config import check_arch, check_channel
from daemon.vessel.errors import ImportRefused
from daemon.vessel.fetch import Downloaded, download_all
from daemon.vessel.index import encode_entry, index_entry, is_newer
from daemon.vessel.ownership import DeclaredOwners, Holder, Offer, StaticOwners, judge
from daemon.vessel.repository import Repository
from events.errors import ConfigError
from events.payloads import BuildDone, Outcome, PackagePublished, PublishedPackage, PublishFailed
from events.sqlite import Connection, Database

StepHook = Callable[[str], None]


@dataclass(frozen=True)
class Prepared:
    """A build whose artefacts are downloaded and verified, waiting in ``workdir``."""

    build: BuildDone
    workdir: Path
    files: tuple[tuple[Downloaded, Inspected], ...] = ()
    #: Package name → owning source, as summit's ``build-accepted`` declared them.
    declared: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Published:
    channel: str
    arch: str
    generation: int
    packages: tuple[PublishedPackage, ...]
    #: True when this build was already imported: nothing changed.
    duplicate: bool = False


@dataclass(frozen=True)
class ImportOutcome:
    """What happened to one build; exactly one of ``published``/``refused`` is set."""

    build: BuildDone
    published: Published | None = None
    refused: ImportRefused | None = None

    @property
    def duplicate(self) -> bool:
        return self.published is not None and self.published.duplicate

    def event_payload(self) -> PackagePublished | PublishFailed:
        """The payload the shell emits: ``package-published`` or ``publish-failed``."""
        b = self.build
        if self.published is not None:
            p = self.published
            return PackagePublished(
                task_id=b.task_id, source=b.source, release=b.release,
                build_release=b.build_release, arch=b.arch, channel=p.channel,
                generation=p.generation, packages=list(p.packages))
        refused = self.refused or ImportRefused("no outcome")
        return PublishFailed(task_id=b.task_id, source=b.source, release=b.release,
                             arch=b.arch, channel=b.channel, reason=refused.reason[:4096],
                             retryable=refused.retryable)


Emit = Callable[[Connection, ImportOutcome], Awaitable[None]]


class Importer:
    def __init__(self, repo: Repository, *, session: aiohttp.ClientSession | None = None,
                 on_step: StepHook | None = None,
                 owners: DeclaredOwners | None = None) -> None:
        self.repo = repo
        #: Which source owns which names, as declared outside vessel (see ownership.py).
        self.owners: DeclaredOwners = owners or StaticOwners()
        self._session = session
        self._on_step = on_step or (lambda _step: None)
        #: Held from an import's transaction until ``current`` names its generation. Imports
        #: share one database lock; without this, an import's ``current`` switch (which reads
        #: the heads) queued behind every other import's transaction, and its announcement
        #: waited for them all (seconds in a mass rebuild). Downloads still overlap.
        self._publishing = asyncio.Lock()

    async def import_build(self, db: Database, build: BuildDone, emit: Emit,
                           declared: Iterable[str] = ()) -> ImportOutcome:
        """Import ``build`` entirely or not at all; see the module docstring for the contract.

        ``declared`` are the package names summit found declared by the build's source
        (``build-accepted``): they are that source's, over any table and any squatter."""
        outcome = await self._already(db, build)
        if outcome is not None:
            async with db.transaction() as conn:
                await emit(conn, outcome)
            return outcome
        prepared: Prepared | None = None
        try:
            prepared = replace(await self.prepare(build),
                               declared={name: build.source for name in declared})
            async with self._publishing:
                async with db.transaction() as conn:
                    try:
                        published = await self.commit(conn, prepared)
                        outcome = ImportOutcome(build, published=published)
                    except ImportRefused as exc:
                        outcome = ImportOutcome(build, refused=exc)
                    await emit(conn, outcome)
                self._on_step("committed")
                if outcome.published is not None and not outcome.duplicate:
                    await self.switch(db, outcome.published)
            if outcome.published is not None and not outcome.duplicate:
                await self.repo.prune(db)
            return outcome
        except ImportRefused as exc:
            outcome = ImportOutcome(build, refused=exc)
            async with db.transaction() as conn:
                await emit(conn, outcome)
            return outcome
        finally:
            if prepared is not None:
                await self.discard(prepared)

    async def prepare(self, build: BuildDone) -> Prepared:
        """Download and inspect every artefact; nothing is written outside ``STATE/tmp``."""
        _check_build(build)
        workdir = self.repo.layout.tmp / f"import-{build.task_id}-{secrets.token_hex(6)}"
        workdir.mkdir(parents=True)
        prepared = Prepared(build, workdir)
        try:
            downloads = await download_all(build.artefacts, workdir, self.repo.config,
                                           self._session)
            self._on_step("downloaded")
            files = []
            for item in downloads:
                inspected = await asyncio.to_thread(
                    inspect_archive, item.path, item.artefact.filename,
                    self.repo.config.archive_limits)
                check_against_build(inspected, item.artefact, build)
                if self.repo.config.verify_provides:
                    await asyncio.to_thread(check_provides, inspected, item.artefact.filename)
                files.append((item, inspected))
        except BaseException:
            await self.discard(prepared)
            raise
        return Prepared(build, workdir, tuple(files))

    async def commit(self, conn: Connection, prepared: Prepared) -> Published:
        """Publish ``prepared`` inside the caller's open transaction (refusals come first)."""
        build, channel = prepared.build, prepared.build.channel
        again = await _find_import(conn, build)
        if again is not None:
            return again
        number = await store.head(conn, channel, build.arch)
        base = [] if number is None else await self.repo.members(conn, channel, number)
        evicted = await self._check_owners(conn, prepared, base)
        await self._check_newer(conn, prepared, base)
        kept = [m for m in base if m[1] != build.source and m[2] not in evicted]
        added, packages = [], []
        for item, inspected in prepared.files:
            sha, size, m = item.artefact.sha256, item.artefact.size, inspected.manifest
            await asyncio.to_thread(pool.place, self.repo.layout, sha, item.path)
            entry = encode_entry(index_entry(m, sha, size))
            await store.add_package(conn, sha, m.name, m.source, m.release, m.build_release,
                                    size, entry)
            self.repo.remember(sha, entry)
            added.append((m.name, m.source, sha))
            packages.append(PublishedPackage(name=m.name, version=m.version, release=m.release,
                                             build_release=m.build_release, sha256=sha,
                                             provides=list(m.provides)))
        self._on_step("pooled")
        generation = await self.repo.publish(
            conn, channel, build.arch, kept + added,
            origin=f"import of task {build.task_id}: {build.source} {build.version}-"
                   f"{build.release}-{build.build_release}")
        await store.record_import(conn, channel, build.arch, build.source, build.release,
                                  build.build_release, build.task_id, generation, packages)
        self._on_step("written")
        return Published(channel, build.arch, generation, tuple(packages))

    async def finish(self, db: Database, published: Published) -> None:
        """After the commit: move ``current``, then prune by policy."""
        await self.switch(db, published)
        await self.repo.prune(db)

    async def switch(self, db: Database, published: Published) -> None:
        """After the commit: move ``current`` (step ``switched``: the publication is served)."""
        await self.repo.sync_current(db, [(published.channel, published.arch)])
        self._on_step("switched")

    async def discard(self, prepared: Prepared) -> None:
        await asyncio.to_thread(shutil.rmtree, prepared.workdir, True)

    async def _already(self, db: Database, build: BuildDone) -> ImportOutcome | None:
        try:
            async with db.read() as conn:
                published = await _find_import(conn, build)
        except ImportRefused as exc:
            return ImportOutcome(build, refused=exc)
        return None if published is None else ImportOutcome(build, published=published)

    async def _check_owners(self, conn: Connection, prepared: Prepared,
                            base: list[store.MemberRef]) -> frozenset[str]:
        """Refuse names held by another source; return the packages a declared owner evicts."""
        build = prepared.build
        offers = [Offer(name, m.name) for _item, inspected in prepared.files
                  for m in (inspected.manifest,) for name in {*m.provides, *own_provides(m.name)}]
        names = frozenset(o.name for o in offers)
        live = {m[2] for m in base}
        held: dict[str, list[Holder]] = {}
        for row in await store.offering(conn, names):
            if row.sha256 in live:
                held.setdefault(row.name, []).append(Holder(row.source, row.package, row.sha256))
        declared = {**await self.owners.owners(conn, build.channel, names),
                    **{n: s for n, s in prepared.declared.items() if n in names}}
        return judge(build.source, f"{build.channel}/{build.arch}", offers, held, declared)

    async def _check_newer(self, conn: Connection, prepared: Prepared,
                           base: list[store.MemberRef]) -> None:
        """Each package must be newer than the one of the same source it replaces."""
        build = prepared.build
        names = {inspected.manifest.name for _item, inspected in prepared.files}
        current = {m[0]: m for m in base if m[0] in names and m[1] == build.source}
        known = await store.releases(conn, [m[2] for m in current.values()])
        for name, (_n, _source, sha) in sorted(current.items()):
            have = known[sha]
            if not is_newer((build.release, build.build_release),
                            (have.release, have.build_release)):
                raise ImportRefused(
                    f"{name} {build.release}-{build.build_release} is not newer than "
                    f"{have.release}-{have.build_release} already in {build.channel}/"
                    f"{build.arch}: bump the recipe's release")


async def _find_import(conn: Connection, build: BuildDone) -> Published | None:
    """The earlier import of this very build, if any (refused if its artefacts differ)."""
    row = await store.find_import(conn, build.channel, build.arch, build.source,
                                  build.release, build.build_release)
    if row is None:
        return None
    if sorted(p.sha256 for p in row.packages) != sorted(a.sha256 for a in build.artefacts):
        raise ImportRefused(
            f"{build.source} {build.release}-{build.build_release} for {build.arch} was "
            f"already imported into {build.channel} (generation {row.generation}) with "
            "different artefacts; bump the release or build release to publish a rebuild")
    return Published(build.channel, build.arch, row.generation, row.packages, duplicate=True)


def _check_build(build: BuildDone) -> None:
    if build.outcome is not Outcome.SUCCESS:
        raise ImportRefused(f"build of task {build.task_id} did not succeed ({build.outcome})")
    if not build.artefacts:
        raise ImportRefused(f"build of task {build.task_id} lists no artefacts")
    try:
        check_channel(build.channel)
        check_arch(build.arch)
    except ConfigError as exc:
        raise ImportRefused(str(exc)) from None
    names = [a.name for a in build.artefacts]
    files = [a.filename for a in build.artefacts]
    if len(set(names)) != len(names) or len(set(files)) != len(files):
        raise ImportRefused(f"build of task {build.task_id} lists a package twice")
