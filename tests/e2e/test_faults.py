"""Summit's decisions hold under faults, with every service its own OS process on a
RabbitMQ node and a Mosquitto of the test's own:

- a long build survives three restarts of the broker and completes once, on the builder that
  started it, at its first attempt;
- an older release still building when a newer one is published ends ``superseded`` (not
  failed), and the API and the dashboard say so;
- a build that failed for the infrastructure (its download answered 503) is given to
  another attempt, which completes: the attempt is carried, the task does not stay ready.

A build the test must control waits for a flag file that the test creates: the sandbox shows
the host's ``/var/tmp`` read-only, so the build sees the flag as soon as it exists.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.server
import shutil
import signal
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.farm import QUICK, ProcessFarm, all_final, bump_release, commit, recipe_repo
from tests.support.mosquitto import MosquittoBroker
from tests.support.rabbitmq import RabbitNode

pytestmark = [pytest.mark.rabbitmq, pytest.mark.mqtt, pytest.mark.slow,
              pytest.mark.timeout(400)]

#: Waits for ``{flag}`` to exist, talking (a silent build would be stopped).
WAITING = """name        : long
version     : 1.0.0
release     : 1
summary     : Builds until the test says it is done
license     : MPL-2.0
build       : |
    while [ ! -e {flag} ]; do echo "long: still building"; sleep 0.5; done
install     : |
    mkdir -p $installdir/usr/share/long && echo done > $installdir/usr/share/long/done
"""


@pytest.fixture
def flag() -> Iterator[Path]:
    """A flag file's path that builds can see (not created yet)."""
    directory = Path("/var/tmp") / f"cairn-test-{uuid.uuid4().hex[:10]}"
    directory.mkdir(mode=0o755)
    try:
        yield directory / "done"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _farm(tmp_path: Path, url: str, mosquitto: MosquittoBroker,
          recipes: dict[str, str], **settings: dict[str, str]) -> ProcessFarm:
    """A farm building ``recipes``; ``settings``: ``builder_env``, ``summit_env``."""
    repo = recipe_repo(tmp_path / "recipes", recipes, examples=False)
    farm = ProcessFarm(url, repo, tmp_path / "state", mqtt_url=mosquitto.url, **settings)
    farm.start_all(builders=2)
    return farm


async def _wait_task(farm: ProcessFarm, source: str, release: int, states: set[str],
                     timeout: float = 120) -> dict[str, Any]:
    def found(tasks: list[dict[str, Any]]) -> bool:
        return any(t["source"] == source and t["release"] == release and t["state"] in states
                   for t in tasks)
    tasks = await farm.wait_tasks(found, timeout=timeout)
    (task,) = [t for t in tasks if t["source"] == source and t["release"] == release]
    return task


async def _healthy(farm: ProcessFarm, timeout: float = 90) -> None:
    """Every service answers /healthz 200: each is connected to the broker again."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            statuses = {}
            for name, port in farm.health_ports.items():
                try:
                    async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                        statuses[name] = response.status
                except aiohttp.ClientError:
                    statuses[name] = None
            if all(status == 200 for status in statuses.values()):
                return
            await asyncio.sleep(0.2)
    raise AssertionError(f"not every service healthy within {timeout}s: {statuses}\n"
                         f"{farm.logs()}")


def _about(events: list[dict[str, Any]], task_id: int, kind: str) -> list[dict[str, Any]]:
    return [e["data"] for e in events
            if e["type"] == kind and e["data"].get("task_id") == task_id]


@pytest.fixture
async def restart_farm(tmp_path: Path, private_rabbit: RabbitNode,
                       private_mosquitto: MosquittoBroker,
                       flag: Path) -> AsyncIterator[ProcessFarm]:
    vhost = f"faults-{uuid.uuid4().hex[:8]}"
    private_rabbit.add_vhost(vhost)
    farm = _farm(tmp_path, private_rabbit.url(vhost), private_mosquitto,
                 {"long": WAITING.format(flag=flag)})
    try:
        yield farm
    finally:
        farm.stop_all()


async def test_a_long_build_survives_three_broker_restarts_and_completes_once(
        restart_farm: ProcessFarm, private_rabbit: RabbitNode, flag: Path) -> None:
    farm = restart_farm
    started = await _wait_task(farm, "long", 1, {"building"})
    builder = started["builder"]
    # Every service is up first: one still connecting when the broker stops exits (its
    # supervisor restarts it), which is another test than a build outliving restarts.
    await _healthy(farm)
    for _ in range(3):
        private_rabbit.stop()
        private_rabbit.start()
        await _healthy(farm)
        # Still the same build: not failed, not given to another attempt or builder.
        now = await _wait_task(farm, "long", 1, {"building"}, timeout=5)
        assert (now["attempt"], now["builder"]) == (1, builder), now
    flag.touch()
    tasks = await farm.wait_tasks(all_final(1), timeout=120)
    (task,) = tasks
    assert (task["state"], task["attempt"], task["builder"]) == ("completed", 1, builder), task
    assert farm.processes[builder].poll() is None, "the builder died"
    events = farm.journal()
    assert [d["attempt"] for d in _about(events, task["id"], "build-started")] == [1]
    assert [(d["attempt"], d["outcome"]) for d in _about(events, task["id"], "build-done")] \
        == [(1, "success")]
    assert len(_about(events, task["id"], "package-published")) == 1
    assert not _about(events, task["id"], "task-cancelled")
    boots = {e["data"]["boot"] for e in events
             if e["type"] == "builder-seen" and e["data"]["builder"] == builder}
    assert len(boots) == 1, f"{builder} started again: {boots}"
    index = [(p["source"], p["release"]) for p in farm.index()["packages"]]
    assert index == [("long", 1)]


@pytest.fixture
async def farm(tmp_path: Path, private_rabbitmq_url: str,
               private_mosquitto: MosquittoBroker, flag: Path) -> AsyncIterator[ProcessFarm]:
    running = _farm(tmp_path, private_rabbitmq_url, private_mosquitto,
                    {"long": WAITING.format(flag=flag)})
    try:
        yield running
    finally:
        running.stop_all()


async def test_an_older_build_overtaken_by_a_newer_publication_ends_superseded(
        farm: ProcessFarm) -> None:
    older = await _wait_task(farm, "long", 1, {"building"})
    bump_release(farm.repo, "long", 2, build='echo "long: quick this time"')
    commit(farm.repo, "long: release 2 builds quickly")
    newer = await _wait_task(farm, "long", 2, {"completed"})
    assert newer["builder"] != older["builder"]
    tasks = await farm.wait_tasks(all_final(2))
    (older,) = [t for t in tasks if t["id"] == older["id"]]
    assert older["state"] == "superseded", older
    assert older["failure"] == "release 2 of long was published while release 1 was building"
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{farm.summit_url}/api/v1/tasks/{older['id']}") as response:
            shown = await response.json()
        async with session.get(f"{farm.summit_url}/tasks/{older['id']}") as response:
            page = await response.text()
    assert shown["state"] == "superseded", shown
    assert "superseded" in page and "was published while release 1 was building" in page
    assert "failed" not in page.split('id="task-state"')[1].split("</span>")[0]
    # The builder was told to stop; its report of the stopped build changed nothing.
    events = farm.journal()
    assert [d["outcome"] for d in _about(events, older["id"], "build-done")] == ["cancelled"]
    assert not _about(events, older["id"], "build-accepted")
    assert not _about(events, older["id"], "package-published")
    assert [(p["source"], p["release"]) for p in farm.index()["packages"]] == [("long", 2)]


class FlakyUpstream(http.server.BaseHTTPRequestHandler):
    """Serves one file, answering 503 to the first request: a mirror having a bad moment."""

    body = b"notes of the flaky upstream\n"
    requests: list[int] = []

    def do_GET(self) -> None:
        status = 503 if not self.requests else 200
        self.requests.append(status)
        body = b"busy" if status == 503 else self.body
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def flaky_upstream() -> Iterator[str]:
    FlakyUpstream.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FlakyUpstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/notes.txt"
    finally:
        server.shutdown()
        server.server_close()


async def test_an_infrastructure_failure_is_built_again_at_the_next_attempt(
        tmp_path: Path, private_rabbitmq_url: str, private_mosquitto: MosquittoBroker,
        flaky_upstream: str) -> None:
    digest = hashlib.sha256(FlakyUpstream.body).hexdigest()
    recipe = f"""name        : notes
version     : 1.0.0
release     : 1
summary     : Needs a download
license     : MPL-2.0
upstreams   :
    - {flaky_upstream} : {digest}
build       : |
    cat notes.txt
install     : |
    mkdir -p $installdir/usr/share/notes && cp notes.txt $installdir/usr/share/notes/
"""
    # The next attempt after a second's back-off, not the default's ten.
    farm = _farm(tmp_path, private_rabbitmq_url, private_mosquitto, {"notes": recipe},
                 summit_env={"CAIRN_SUMMIT_RETRY_BACKOFF_S": "1"})
    try:
        (task,) = await farm.wait_tasks(all_final(1))
        events = farm.journal()
    finally:
        farm.stop_all()
    assert (task["state"], task["attempt"]) == ("completed", 2), task
    assert FlakyUpstream.requests == [503, 200]
    done = [(d["attempt"], d["outcome"]) for d in _about(events, task["id"], "build-done")]
    assert done == [(1, "infrastructure"), (2, "success")]
    assert [d["attempt"] for d in _about(events, task["id"], "task-ready")] == [1, 2]
    assert len(_about(events, task["id"], "package-published")) == 1


async def test_builders_stopped_while_summit_cancels_their_assignment_never_build_it(
        tmp_path: Path, private_rabbitmq_url: str, private_mosquitto: MosquittoBroker) -> None:
    """The first race with real processes: every builder is stopped (SIGSTOP) while summit
    assigns release 2 and then cancels it (the bump is reverted); continued (SIGCONT), the
    builder that had it claims, is refused, and says it did not start it. The decision
    survives summit itself killed (-9) after the assignment and started again. (The same
    race without the kill: tests/integration/test_summit_races.py, on RabbitMQ too.)"""
    farm = _farm(tmp_path, private_rabbitmq_url, private_mosquitto, {"tally-docs": QUICK})
    builders = ("builder1", "builder2")
    try:
        await _wait_task(farm, "tally-docs", 1, {"completed"})
        for name in builders:
            farm.processes[name].send_signal(signal.SIGSTOP)
        try:
            bump_release(farm.repo, "tally-docs", 2)
            commit(farm.repo, "tally-docs: release 2")
            bumped = await farm.wait_tasks(lambda ts: any(
                t["release"] == 2 and t["state"] == "ready" and t["builder"] for t in ts))
            (bumped_task,) = [t for t in bumped if t["release"] == 2]
            farm.kill("summit")
            farm.start_summit()
            bump_release(farm.repo, "tally-docs", 1)
            commit(farm.repo, "tally-docs: back to release 1")
            await _wait_task(farm, "tally-docs", 2, {"cancelled"})
        finally:
            for name in builders:
                farm.processes[name].send_signal(signal.SIGCONT)
        holder = farm.state / f"{bumped_task['builder']}.log"
        refused = f'"task_id": {bumped_task["id"]}'
        deadline = time.monotonic() + 60
        while not any("avalanche.not_started" in line and refused in line
                      for line in holder.read_text().splitlines()):
            assert time.monotonic() < deadline, farm.logs()
            await asyncio.sleep(0.2)
        assert [(p["source"], p["release"]) for p in farm.index()["packages"]] == [
            ("tally-docs", 1)]
        # Both builders work on: the next release is built and published.
        bump_release(farm.repo, "tally-docs", 3)
        commit(farm.repo, "tally-docs: release 3")
        await _wait_task(farm, "tally-docs", 3, {"completed"})
        events = farm.journal()
    finally:
        farm.stop_all()
    assert [(p["source"], p["release"]) for p in farm.index()["packages"]] == [
        ("tally-docs", 3)]
    recorded = {e["type"] for e in events if e["data"].get("task_id") == bumped_task["id"]}
    assert "build-started" in recorded, recorded
    assert not {"build-admitted", "build-done", "build-accepted",
                "package-published"} & recorded, recorded


async def test_a_build_accepted_before_vessel_ever_started_is_published_once_it_starts(
        tmp_path: Path, private_rabbitmq_url: str,
        private_mosquitto: MosquittoBroker) -> None:
    """Start-up order: summit accepts a build while vessel has never run (no queue of its
    own yet, and no definitions imported); vessel, started later, publishes it."""
    repo = recipe_repo(tmp_path / "recipes", {"tally-docs": QUICK}, examples=False)
    farm = ProcessFarm(private_rabbitmq_url, repo, tmp_path / "state",
                       mqtt_url=private_mosquitto.url)
    try:
        farm.start("journal", "journal")
        farm.wait_ready("journal")
        farm.start_summit()
        farm.start_builder("builder1")
        waiting = await _wait_task(farm, "tally-docs", 1, {"publishing"})
        farm.start("vessel", "vessel", CAIRN_VESSEL_LISTEN_PORT=str(farm.vessel_port))
        done = await _wait_task(farm, "tally-docs", 1, {"completed"}, timeout=60)
        events = farm.journal()
    finally:
        farm.stop_all()
    assert done["id"] == waiting["id"] and done["attempt"] == 1
    assert len(_about(events, done["id"], "package-published")) == 1
    assert [(p["source"], p["release"]) for p in farm.index()["packages"]] == [
        ("tally-docs", 1)]
