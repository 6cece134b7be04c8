"""Summit on real RabbitMQ, with the test playing the builder and vessel: nothing is
assigned before a builder reports itself; a claim is admitted; a successful build goes to
vessel as build-accepted; a publication of a task's last dependency dispatches it at once,
a failed build blocks its dependents with the reason, and the same events delivered again
change nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from daemon.runtime import BusSection, Health, StateSection
from daemon.summit.daemon import (
    RepositorySection,
    SummitDaemon,
    SummitDaemonConfig,
    SummitSection,
)
from events import payloads as p
from events.amqp import AmqpBus
from events.envelope import Event, new_event
from events.testing import Captured, captured_events
from events.topology import JOURNAL, VESSEL, builder
from tests.support.summit import start_summit
from tests.unit.avalanche.support import make_repo

pytestmark = [pytest.mark.rabbitmq]
SHA = "0" * 64


BUILDER = "b1"


@pytest.fixture
async def bus(private_rabbitmq_url: str) -> AsyncIterator[AmqpBus]:
    connected = AmqpBus(private_rabbitmq_url, name="test")
    async with connected:
        # Their queues exist in a real deployment (the builder declares its own at start).
        for subscription in (VESSEL, JOURNAL, builder(BUILDER)):
            await connected.declare(subscription)
        yield connected


async def _summit(tmp_path: Path, url: str) -> SummitDaemon:
    return await start_summit(tmp_path, url)


async def _builder_online(bus: AmqpBus, slots: int = 4) -> None:
    """What a builder says when it starts: summit assigns work only to builders it heard."""
    await bus.publish(new_event(p.BuilderSeen(
        builder=BUILDER, arch="x86_64", state=p.BuilderState.ONLINE, boot="boot-1",
        slots=slots, interval_s=60.0), source="test"))


def _ready(seen: Captured) -> dict[str, p.TaskReady]:
    return {e.data.source: e.data for e in seen.of_type("task-ready")}


async def _settle(seen: Captured, count: int) -> None:
    await seen.wait_for("task-ready", count=count, timeout=20)
    await asyncio.sleep(0.5)


def _published(task: p.TaskReady, provides: list[str]) -> p.PackagePublished:
    return p.PackagePublished(
        task_id=task.task_id, source=task.source, release=task.release, build_release=1,
        arch="x86_64", channel="volatile", generation=task.task_id,
        packages=[p.PublishedPackage(name=task.source, version=task.version,
                                     release=task.release, build_release=1, sha256=SHA,
                                     provides=provides)])


def _claim(task: p.TaskReady) -> p.BuildStarted:
    return p.BuildStarted(task_id=task.task_id, builder=task.builder, arch="x86_64",
                          attempt=task.attempt)


def _done(task: p.TaskReady, outcome: p.Outcome, reason: str | None = None) -> p.BuildDone:
    artefacts = [p.Artefact(name=task.source, filename=f"{task.source}.tar.zst",
                            url="http://b1/a", sha256=SHA, size=1)] \
        if outcome is p.Outcome.SUCCESS else []
    return p.BuildDone(task_id=task.task_id, attempt=task.attempt, builder=task.builder,
                       source=task.source, version=task.version, release=task.release,
                       build_release=1, arch="x86_64", outcome=outcome, reason=reason,
                       artefacts=artefacts)


async def test_publication_dispatches_failure_blocks_replay_changes_nothing(
        tmp_path: Path, bus: AmqpBus, private_rabbitmq_url: str) -> None:
    kinds = ("task-ready", "build-admitted", "build-accepted", "task-cancelled")
    async with captured_events(bus, *kinds) as seen:
        summit = await _summit(tmp_path, private_rabbitmq_url)
        try:
            await asyncio.sleep(1.0)
            assert not seen.of_type("task-ready")  # no builder yet: nothing is assigned
            await _builder_online(bus)
            await _settle(seen, 2)
            first = _ready(seen)
            assert set(first) == {"libgreet", "diamond-a"}
            assert {(t.builder, t.attempt) for t in first.values()} == {(BUILDER, 1)}
            assert first["libgreet"].critical_path > 0
            lib, diamond = first["libgreet"], first["diamond-a"]
            sent: list[Event[Any]] = []

            async def send(payload: Any) -> None:
                event = new_event(payload, source="test")
                sent.append(event)
                await bus.publish(event)

            await send(_claim(lib))
            await send(_claim(diamond))
            admitted = await seen.wait_for("build-admitted", count=2, timeout=20)
            assert {e.data.task_id for e in admitted} == {lib.task_id, diamond.task_id}
            await send(_done(lib, p.Outcome.SUCCESS))
            (accepted,) = await seen.wait_for("build-accepted", timeout=20)
            assert (accepted.data.task_id, accepted.data.packages) == (lib.task_id,
                                                                       ["libgreet"])
            await send(_published(lib, ["pkgconfig(libgreet)", "soname(libgreet.so.1"
                                        "(x86_64))"]))
            await send(_done(diamond, p.Outcome.FAILED, "step build exited with status 2"))
            await _settle(seen, 3)
            ready = _ready(seen)
            assert set(ready) == {"libgreet", "diamond-a", "greet"}
            assert seen.of_type("task-ready")[-1].causationid == sent[3].id  # the publication

            service = summit.service
            assert service is not None
            tasks = {t.source: t for t in service.scheduler.all_tasks()}
            assert str(tasks["diamond-a"].state) == "failed"
            assert "status 2" in (tasks["diamond-a"].failure or "")
            for user in ("diamond-b", "diamond-c"):
                reasons = [b.to_json() for b in tasks[user].blocked_by]
                assert {"kind": "failed", "source": "diamond-a",
                        "task_id": tasks["diamond-a"].task_id} in reasons
            assert str(tasks["greet"].state) == "ready" and tasks["greet"].builder == BUILDER
            snapshot = {t.task_id: t for t in tasks.values()}
            counts = {kind: len(seen.of_type(kind)) for kind in kinds}

            for event in sent:  # the same events again: redelivery or replay
                await bus.publish(event)
            await asyncio.sleep(2)
            after = {t.task_id: t for t in service.scheduler.all_tasks()}
            assert after == snapshot
            assert {kind: len(seen.of_type(kind)) for kind in kinds} == counts
        finally:
            await summit.stop(5)


async def test_signed_webhook_push_plans_at_once_and_metrics_show_it(
        tmp_path: Path, bus: AmqpBus, private_rabbitmq_url: str) -> None:
    import hashlib
    import hmac
    import json

    import aiohttp

    from tests.e2e.farm import bump_release, commit

    repo, _ = make_repo(tmp_path / "recipes")
    config = SummitDaemonConfig(
        bus=BusSection(url=private_rabbitmq_url), state=StateSection(dir=str(tmp_path / "s")),
        summit=SummitSection(listen_port=0, repository_url="", poll_interval=3600,
                             repositories=[RepositorySection(
                                 name="recipes", url=str(repo),
                                 webhook_urls=["https://forge.example/distro/recipes"],
                                 github_secret="s3cret")]))
    summit = SummitDaemon(config, Health("summit"))
    async with captured_events(bus, "commit-seen", "task-ready") as seen:
        await summit.start()
        try:
            await _builder_online(bus, slots=1)  # one slot: diamond-a waits unassigned
            await seen.wait_for("task-ready", count=1, timeout=20)
            bump_release(repo, "diamond-a", 2)  # supersedes the undispatched release 1
            head = commit(repo, "diamond-a: release 2")
            body = json.dumps({
                "ref": "refs/heads/main", "after": head, "before": "0" * 40,
                "repository": {"full_name": "distro/recipes",
                               "clone_url": "https://forge.example/distro/recipes.git",
                               "html_url": "https://forge.example/distro/recipes"},
                "commits": [{"id": head}]}).encode()
            signature = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
            headers = {"X-GitHub-Event": "push", "X-GitHub-Delivery": "d-1",
                       "X-Hub-Signature-256": signature, "Content-Type": "application/json"}
            url = f"{summit.url}/api/v1/webhooks/github"
            async with aiohttp.ClientSession() as session:
                async with session.post(url, data=body, headers={
                        **headers, "X-Hub-Signature-256": "sha256=" + "0" * 64}) as refused:
                    assert refused.status == 401
                async with session.post(url, data=body, headers=headers) as accepted:
                    assert accepted.status == 202, await accepted.text()
                async with session.post(url, data=body, headers=headers) as again:
                    assert (await again.json())["status"] == "duplicate"
                commits = await seen.wait_for("commit-seen", count=2, timeout=20)
                assert commits[-1].data.new_commit == head
                assert str(commits[-1].data.seen_via) == "webhook"
                await seen.wait_for("commit-seen", count=2, timeout=20)
                for _ in range(100):
                    service = summit.service
                    assert service is not None
                    latest = {t.source: t for t in service.scheduler.all_tasks()
                              if str(t.state) == "ready"}
                    if latest.get("diamond-a") and latest["diamond-a"].release == 2:
                        break
                    await asyncio.sleep(0.1)
                assert latest["diamond-a"].release == 2
                async with session.get(f"{summit.url}/metrics") as metrics:
                    text = await metrics.text()
            assert 'cairn_tasks{state="ready"}' in text
            assert 'cairn_events_handled_total{queue="cairn.summit",type="commit-seen"}' in text
            assert "cairn_queue_depth" in text and "cairn_builders_online" in text
        finally:
            await summit.stop(5)


def _signed_push(head: str, delivery: str,
                 secret: bytes = b"s3cret") -> tuple[bytes, dict[str, str]]:
    import hashlib
    import hmac
    import json

    body = json.dumps({
        "ref": "refs/heads/main", "after": head, "before": "0" * 40,
        "repository": {"full_name": "distro/recipes",
                       "clone_url": "https://forge.example/distro/recipes.git",
                       "html_url": "https://forge.example/distro/recipes"},
        "commits": [{"id": head}]}).encode()
    signature = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    return body, {"X-GitHub-Event": "push", "X-GitHub-Delivery": delivery,
                  "X-Hub-Signature-256": signature, "Content-Type": "application/json"}


async def test_a_replayed_push_of_an_old_commit_plans_only_the_branch_head(
        tmp_path: Path, bus: AmqpBus, private_rabbitmq_url: str) -> None:
    """A captured, signed push sent again with a new delivery id names an old commit; summit
    plans only what the branch points at, so the old commit is never planned."""
    import aiohttp

    from tests.e2e.farm import bump_release, commit

    repo, old = make_repo(tmp_path / "recipes")
    bump_release(repo, "diamond-a", 2)
    head = commit(repo, "diamond-a: release 2")
    config = SummitDaemonConfig(
        bus=BusSection(url=private_rabbitmq_url), state=StateSection(dir=str(tmp_path / "s")),
        summit=SummitSection(listen_port=0, repository_url="", poll_interval=3600,
                             repositories=[RepositorySection(
                                 name="recipes", url=str(repo),
                                 webhook_urls=["https://forge.example/distro/recipes"],
                                 github_secret="s3cret")]))
    summit = SummitDaemon(config, Health("summit"))
    async with captured_events(bus, "commit-seen") as seen:
        await summit.start()
        try:
            service = summit.service
            assert service is not None
            (first,) = await seen.wait_for("commit-seen", count=1, timeout=20)
            assert first.data.new_commit == head
            url = f"{summit.url}/api/v1/webhooks/github"
            async with aiohttp.ClientSession() as session:
                body, headers = _signed_push(old, "replayed-with-a-new-id")
                async with session.post(url, data=body, headers=headers) as replayed:
                    assert replayed.status == 202, await replayed.text()
                bump_release(repo, "diamond-a", 3)
                newest = commit(repo, "diamond-a: release 3")
                body, headers = _signed_push(newest, "a-real-push")
                async with session.post(url, data=body, headers=headers) as real:
                    assert real.status == 202, await real.text()
            commits = await seen.wait_for("commit-seen", count=2, timeout=20)
            assert [c.data.new_commit for c in commits] == [head, newest]
            for _ in range(100):
                tasks = [t for t in service.scheduler.all_tasks() if t.source == "diamond-a"]
                if any(t.release == 3 for t in tasks):
                    break
                await asyncio.sleep(0.1)
            assert sorted((t.release, str(t.state)) for t in tasks) == [
                (2, "superseded"), (3, "ready")]
        finally:
            await summit.stop(5)
