"""Kill a real vessel import with SIGKILL at every durable step, restart, and check the result.

The child program (this file, ``python test_vessel_crash.py STATE BUILD_JSON [STEP]``) opens
vessel's state, reconciles, and imports one build, writing its event to the outbox in the
import's transaction; with STEP it kills itself (SIGKILL, no cleanup) when the importer
reaches that step. The ``downloading`` case is killed by the test while the artefact server
trickles bytes.

What must hold after the kill: the previous generation is intact, signed and ``current``
names a complete generation. After a restart the import completes exactly once: one
generation, one import record, one ``package-published`` event, no leftovers.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import msgspec
import pytest

from daemon.repo.verify import verify_repository
from daemon.vessel import store
from daemon.vessel.config import VesselConfig
from daemon.vessel.importer import Importer, ImportOutcome
from daemon.vessel.repository import Repository
from events import outbox
from events.envelope import decode_event, new_event
from events.payloads import BuildDone
from events.sqlite import Connection, Database
from tests.unit.vessel.builders import ArtefactServer, Pkg, build_done

REPO = Path(__file__).resolve().parents[2]

# --- the child program -------------------------------------------------------------------


async def child(state: Path, build_file: Path, crash_at: str | None) -> None:
    build = msgspec.json.decode(build_file.read_bytes(), type=BuildDone)
    config = VesselConfig(state_dir=state, read_timeout=30.0)
    repo = Repository.open(config)

    def on_step(step: str) -> None:
        if step == crash_at:
            os.kill(os.getpid(), signal.SIGKILL)

    async def emit(conn: Connection, outcome: ImportOutcome) -> None:
        if not outcome.duplicate:  # the shell's choice: announce a publication once
            await outbox.add(conn, new_event(outcome.event_payload(), source="vessel"))

    async with Database.open(config.layout.db, store.MIGRATIONS) as db:
        await repo.reconcile(db)
        outcome = await Importer(repo, on_step=on_step).import_build(db, build, emit)
    state_of = "duplicate" if outcome.duplicate else (
        "published" if outcome.published else f"refused: {outcome.refused}")
    print(state_of, flush=True)


# --- the test ------------------------------------------------------------------------------


async def run_child(state: Path, build: BuildDone, crash_at: str | None = None,
                    server: ArtefactServer | None = None) -> tuple[int, str]:
    build_file = state.parent / f"build-{build.release}.json"
    build_file.write_bytes(msgspec.json.encode(build))
    args = [sys.executable, str(Path(__file__)), str(state), str(build_file)]
    proc = await asyncio.create_subprocess_exec(
        *args, *([crash_at] if crash_at and crash_at != "downloading" else []), cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    if crash_at == "downloading":
        assert server is not None
        # Release 1 was fetched once; poll (a child process, no event to wait on) for this one.
        while len(server.requests) < 2:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # some bytes are on disk in STATE/tmp now
        proc.send_signal(signal.SIGKILL)
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode() + err.decode()


def generation_dirs(config: VesselConfig) -> list[str]:
    return sorted(p.name for p in config.layout.arch_dir("volatile", "x86_64").iterdir())


async def published_events(config: VesselConfig) -> list[tuple[int, int]]:
    async with Database.open(config.layout.db, store.MIGRATIONS) as db:
        rows = await db.fetchall("SELECT body FROM cairn_outbox ORDER BY seq")
    events = [decode_event(bytes(r[0])) for r in rows]
    return [(e.data.release, e.data.generation) for e in events
            if e.type == "package-published"]


@pytest.mark.slow
@pytest.mark.parametrize("crash_at", ["downloading", "pooled", "written", "committed",
                                      "switched"])
async def test_kill_during_import_then_restart_imports_once(tmp_path: Path,
                                                            crash_at: str) -> None:
    state = tmp_path / "vessel"
    config = VesselConfig(state_dir=state)
    async with ArtefactServer().running() as server:
        v1 = Pkg(name="hello", release=1, files={"usr/bin/hello": b"one"})
        first = build_done([server.add(v1)], source="hello", release=1, task_id=1)
        code, output = await run_child(state, first)
        assert code == 0 and "published" in output, output

        # Release 2 is big enough to trickle for a while when the server is slowed down.
        v2 = Pkg(name="hello", release=2, files={"usr/bin/hello": os.urandom(400_000)})
        second = build_done([server.add(v2)], source="hello", release=2, task_id=2)
        server.delay_per_chunk = 0.2 if crash_at == "downloading" else 0.0
        code, output = await run_child(state, second, crash_at, server)
        assert code == -signal.SIGKILL, output

        if crash_at == "downloading":  # killed mid-way: a partial download is left behind
            assert list(config.layout.tmp.rglob("*.part"))
        # Whatever the step, current names a complete, signed generation, and gen 1 is intact.
        committed = crash_at in ("committed", "switched")
        current = os.readlink(config.layout.current("volatile", "x86_64"))
        assert current == ("2" if crash_at == "switched" else "1")
        report = await verify_repository(str(config.layout.root), arch="x86_64",
                                         allow_not_hermetic=True)
        assert report.ok, report.problems
        assert report.generation == int(current)
        assert (config.layout.generation_dir("volatile", "x86_64", 1) / "index.json").is_file()

        server.delay_per_chunk = 0.0
        code, output = await run_child(state, second)
        assert code == 0, output
        assert output.strip() == ("duplicate" if committed else "published")

        assert generation_dirs(config) == ["1", "2", "current"]
        assert os.readlink(config.layout.current("volatile", "x86_64")) == "2"
        assert await published_events(config) == [(1, 1), (2, 2)]
        async with Database.open(config.layout.db, store.MIGRATIONS) as db:
            imports = await db.fetchall("SELECT release, generation FROM vessel_imports")
        assert sorted(tuple(r) for r in imports) == [(1, 1), (2, 2)]
        assert not any(config.layout.tmp.iterdir())
        assert len(list(config.layout.pool.rglob("*.tar.zst"))) == 2
        final = await verify_repository(str(config.layout.root), arch="x86_64",
                                         allow_not_hermetic=True)
        assert final.ok and final.generation == 2 and final.checked == 1


if __name__ == "__main__":
    asyncio.run(child(Path(sys.argv[1]), Path(sys.argv[2]),
                      sys.argv[3] if len(sys.argv) > 3 else None))
