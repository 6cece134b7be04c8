"""The journal records every event once, and the CLI reads it back."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from daemon.journal.service import Journal
from daemon.journal.store import MIGRATIONS, Filters, causation_chain, select
from events import payloads as p
from events.envelope import new_event, replayed
from events.memory import MemoryBus
from events.sqlite import Database

COMMIT = "a" * 40


async def _record_chain(db_path: Path) -> list[str]:
    bus = MemoryBus()
    async with bus, Database.open(db_path, MIGRATIONS) as db:
        journal = Journal(bus, db)
        await journal.start()
        seen = new_event(p.CommitSeen(repository="r", url="file:///r", branch="main",
                                      new_commit=COMMIT), source="summit")
        ready = new_event(p.TaskReady(task_id=5, attempt=1, builder="b1", source="zlib",
                                      version="1", release=2, arch="x86_64", repository="r",
                                      repository_url="file:///r", commit=COMMIT,
                                      recipe_path="z/zlib"),
                          source="summit", causation=seen)
        started = new_event(p.BuildStarted(task_id=5, builder="b1", arch="x86_64"),
                            source="avalanche", causation=ready)
        for event in (seen, ready, started, replayed(ready), ready):
            await bus.publish(event)
        for _ in range(200):
            if journal.recorded >= 3 and await bus.queue_depth("cairn.journal") == 0:
                break
            await asyncio.sleep(0.01)
        await journal.stop()
        recorded = await select(db, Filters())
        assert [e.id for e in recorded] == [seen.id, ready.id, started.id]
        assert journal.recorded == 3
        chain = await causation_chain(db, started.id)
        assert [e.type for e in chain] == ["commit-seen", "task-ready", "build-started"]
        only_task = await select(db, Filters(task_id=5, types=["build-started"]))
        assert [e.id for e in only_task] == [started.id]
        return [seen.id, ready.id, started.id]


async def test_journal_records_once_and_cli_reads(tmp_path: Path) -> None:
    db_path = tmp_path / "journal.sqlite"
    ids = await _record_chain(db_path)
    cli = [sys.executable, "-m", "daemon.cli", "events"]
    listing = subprocess.run([*cli, "ls", "--journal", str(db_path), "--task", "5"],
                             capture_output=True, text=True, check=True)
    assert ids[1] in listing.stdout and ids[2] in listing.stdout and ids[0] not in listing.stdout
    shown = subprocess.run([*cli, "show", ids[2], "--journal", str(db_path)],
                           capture_output=True, text=True, check=True)
    assert ids[0] in shown.stdout and "commit-seen" in shown.stdout
    exported = subprocess.run([*cli, "export", "--journal", str(db_path)],
                              capture_output=True, text=True, check=True)
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [line["id"] for line in lines] == ids
    out = tmp_path / "replay.jsonl"
    subprocess.run([*cli, "replay", "--journal", str(db_path), "--to", str(out)],
                   capture_output=True, text=True, check=True)
    replay = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in replay] == ids and all(r["cairnreplayed"] for r in replay)
    missing = subprocess.run([*cli, "show", "nope", "--journal", str(db_path)],
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "no event nope" in missing.stderr
