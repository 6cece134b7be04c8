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
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import aiohttp

from daemon.provides import own_provides
from daemon.vessel import pool, store
from daemon.vessel.archive import Inspected, check_against_build, inspect_archive
from daemon.vessel.claims import check_provides
from daemon.vessel.config import check_arch, check_channel
from daemon.vessel.errors import ImportRefused, RepositoryError
from daemon.vessel.fetch import Downloaded, download_all
from daemon.vessel.index import encode_entry, index_entry, is_newer
from daemon.vessel.ownership import DeclaredOwners, Holder, Offer, StaticOwners, judge
from daemon.vessel.parts import MemberRef, Members, Part, change
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


@dataclass
class _Waiting:
    """A prepared import waiting for the next group commit."""

    prepared: Prepared
    emit: Emit
    done: asyncio.Future[ImportOutcome]


class Importer:
    def __init__(self, repo: Repository, *, session: aiohttp.ClientSession | None = None,
                 on_step: StepHook | None = None,
                 owners: DeclaredOwners | None = None) -> None:
        self.repo = repo
        #: Which source owns which names, as declared outside vessel (see ownership.py).
        self.owners: DeclaredOwners = owners or StaticOwners()
        self._session = session
        self._on_step = on_step or (lambda _step: None)
        #: Held from a group's transaction until ``current`` names its generation. Imports
        #: share one database lock; without this, an import's ``current`` switch (which reads
        #: the heads) queued behind every other import's transaction, and its announcement
        #: waited for them all (seconds in a mass rebuild). Downloads still overlap.
        self._publishing = asyncio.Lock()
        self._waiting: list[_Waiting] = []

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
            return await self._group_commit(db, prepared, emit)
        except ImportRefused as exc:
            outcome = ImportOutcome(build, refused=exc)
            async with db.transaction() as conn:
                await emit(conn, outcome)
            return outcome
        finally:
            if prepared is not None:
                await self.discard(prepared)

    async def _group_commit(self, db: Database, prepared: Prepared, emit: Emit
                            ) -> ImportOutcome:
        """Publish ``prepared`` together with every import prepared meanwhile.

        Group commit: the first import to find no publication running publishes at once (an
        idle farm waits for nothing); imports that become ready while it runs wait for it
        and then go together, into one generation of their channel, in one transaction
        (each keeps its own refusal). A failure of the transaction fails every import of
        the group, none of which committed: the bus redelivers each.
        """
        me = _Waiting(prepared, emit, asyncio.get_running_loop().create_future())
        self._waiting.append(me)
        fresh = False
        try:
            async with self._publishing:
                if not me.done.done():
                    fresh = await self._lead(db, me)
        except BaseException:
            if me in self._waiting:
                self._waiting.remove(me)
            elif not me.done.done():
                # A leader is publishing this import's files: they stay until it is done.
                await asyncio.wait([me.done])
            raise
        outcome = await me.done
        if fresh:
            await self.repo.prune(db)
        return outcome

    async def _lead(self, db: Database, me: _Waiting) -> bool:
        """Publish ``me`` and the imports waiting for the same channel and arch; settle each
        one's future. Whether a new generation was published."""
        build = me.prepared.build
        group = [w for w in self._waiting
                 if (w.prepared.build.channel, w.prepared.build.arch) == (build.channel,
                                                                          build.arch)]
        self._waiting = [w for w in self._waiting if w not in group]
        try:
            outcomes = await self._publish_group(db, group)
        except BaseException as exc:
            for waiting in group:
                waiting.done.set_exception(exc)
            me.done.exception()  # raised below, by the leader itself
            raise
        for waiting, outcome in zip(group, outcomes, strict=True):
            waiting.done.set_result(outcome)
        return any(o.published is not None and not o.duplicate for o in outcomes)

    async def _publish_group(self, db: Database, group: list[_Waiting]) -> list[ImportOutcome]:
        async with db.transaction() as conn:
            results = await self.commit_all(conn, [w.prepared for w in group])
            outcomes = [ImportOutcome(w.prepared.build, published=r)
                        if isinstance(r, Published) else
                        ImportOutcome(w.prepared.build, refused=r)
                        for w, r in zip(group, results, strict=True)]
            for waiting, outcome in zip(group, outcomes, strict=True):
                await waiting.emit(conn, outcome)
        self._on_step("committed")
        fresh = [o.published for o in outcomes if o.published and not o.duplicate]
        if fresh:
            await self.switch(db, fresh[0])
        return outcomes

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
        result = (await self.commit_all(conn, [prepared]))[0]
        if isinstance(result, ImportRefused):
            raise result
        return result

    async def commit_all(self, conn: Connection, group: Sequence[Prepared]
                         ) -> list[Published | ImportRefused]:
        """Publish the builds of ``group`` (one channel and arch) as one new generation,
        inside the caller's open transaction. A refused build writes nothing; the others
        are checked against the channel as the builds before them left it."""
        channel, arch = group[0].build.channel, group[0].build.arch
        number = await store.head(conn, channel, arch)
        view = Members(()) if number is None else await self.repo.view(conn, channel, number)
        generation = await store.next_generation(conn, channel)
        results: list[Published | ImportRefused] = []
        origin: list[BuildDone] = []
        for prepared in group:
            try:
                again = await _find_import(conn, prepared.build)
                if again is not None:
                    results.append(again)
                    continue
                gone, new, packages = await self._change(conn, prepared, view)
            except ImportRefused as exc:
                results.append(exc)
                continue
            build = prepared.build
            await store.record_import(conn, channel, arch, build.source, build.release,
                                      build.build_release, build.task_id, generation, packages)
            view = Members(tuple(_loose(p) for p in change(view, gone, new)))
            origin.append(build)
            results.append(Published(channel, arch, generation, tuple(packages)))
        if origin:
            self._on_step("pooled")
            # Parts the group changed have no hash yet: they are cut, encoded and written now.
            pieces = [p if p.sha256 else list(p.members) for p in view.parts]
            made = await self.repo.publish_pieces(conn, channel, arch, pieces,
                                                  origin=_origin(origin))
            if made != generation:
                raise RepositoryError(f"generation {made} published, {generation} expected")
            self._on_step("written")
        return results

    async def _change(self, conn: Connection, prepared: Prepared, view: Members
                      ) -> tuple[set[MemberRef], list[MemberRef], list[PublishedPackage]]:
        """Check one build against ``view``, pool its files and store its packages: what it
        removes, what it adds and what it publishes. Refusals come before any write."""
        build = prepared.build
        evicted = await self._check_owners(conn, prepared, view)
        await self._check_newer(conn, prepared, view)
        gone = {m for m in await store.of_source(conn, build.source) if m in view}
        gone |= evicted
        new, packages = [], []
        for item, inspected in prepared.files:
            sha, size, m = item.artefact.sha256, item.artefact.size, inspected.manifest
            await asyncio.to_thread(pool.place, self.repo.layout, sha, item.path)
            entry = encode_entry(index_entry(m, sha, size))
            await store.add_package(conn, sha, m.name, m.source, m.release, m.build_release,
                                    size, entry)
            self.repo.remember(sha, entry)
            new.append((m.name, m.source, sha))
            packages.append(PublishedPackage(name=m.name, version=m.version, release=m.release,
                                             build_release=m.build_release, sha256=sha,
                                             provides=list(m.provides)))
        return gone, new, packages

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
                            view: Members) -> set[MemberRef]:
        """Refuse names held by another source; return the packages a declared owner evicts."""
        build = prepared.build
        offers = [Offer(name, m.name) for _item, inspected in prepared.files
                  for m in (inspected.manifest,) for name in {*m.provides, *own_provides(m.name)}]
        names = frozenset(o.name for o in offers)
        held: dict[str, list[Holder]] = {}
        live: dict[str, MemberRef] = {}
        for row in await store.offering(conn, names):
            member = (row.package, row.source, row.sha256)
            if member in view:
                held.setdefault(row.name, []).append(Holder(row.source, row.package, row.sha256))
                live[row.sha256] = member
        declared = {**await self.owners.owners(conn, build.channel, names),
                    **{n: s for n, s in prepared.declared.items() if n in names}}
        evicted = judge(build.source, f"{build.channel}/{build.arch}", offers, held, declared)
        return {live[sha] for sha in evicted}

    async def _check_newer(self, conn: Connection, prepared: Prepared,
                           view: Members) -> None:
        """Each package must be newer than the one of the same source it replaces."""
        build = prepared.build
        names = {inspected.manifest.name for _item, inspected in prepared.files}
        current = {m[0]: m for name in names for m in view.named(name)
                   if m[1] == build.source}
        known = await store.releases(conn, [m[2] for m in current.values()])
        for name, (_n, _source, sha) in sorted(current.items()):
            have = known[sha]
            if not is_newer((build.release, build.build_release),
                            (have.release, have.build_release)):
                raise ImportRefused(
                    f"{name} {build.release}-{build.build_release} is not newer than "
                    f"{have.release}-{have.build_release} already in {build.channel}/"
                    f"{build.arch}: bump the recipe's release")


def _loose(piece: Part | list[MemberRef]) -> Part:
    """A piece as a part to search (a new one has no hash yet: it is only looked into)."""
    return piece if isinstance(piece, Part) else Part("", 0, tuple(piece))


def _origin(builds: Sequence[BuildDone]) -> str:
    first = builds[0]
    text = (f"import of task {first.task_id}: {first.source} {first.version}-"
            f"{first.release}-{first.build_release}")
    return text if len(builds) == 1 else f"{text} and {len(builds) - 1} more"


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
