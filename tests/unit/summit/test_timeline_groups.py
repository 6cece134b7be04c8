"""Recent events as a person reads them: what one event did to many tasks is one line."""

from __future__ import annotations

from pathlib import Path

from daemon.summit import queries, schema, store
from events.sqlite import Database


async def test_entries_of_one_event_and_state_are_one_line_with_a_count(tmp_path: Path) -> None:
    async with Database.open(tmp_path / "summit.sqlite", schema.MIGRATIONS) as db:
        async with db.transaction() as conn:
            # Planning a tree: one commit-seen blocks 613 tasks and makes 40 ready.
            await store.add_timeline(conn, [
                *((i, "commit-1", "blocked", f"dependency d{i}") for i in range(613)),
                *((1000 + i, "commit-1", "ready", "") for i in range(40))])
            # Then two builds, each its own event, and a note without an event.
            await store.add_timeline(conn, [(1000, "start-1", "building", "on b1"),
                                            (1001, "start-2", "building", "on b2"),
                                            (1000, None, "note", "claim refused"),
                                            (1001, None, "note", "claim refused")])
        groups = await queries.timeline_groups(db, 20, window=100)
    assert [(g["type"], g["count"]) for g in groups] == [
        ("note", 1), ("note", 1), ("building", 1), ("building", 1), ("ready", 40),
        ("blocked", 613)]
    # The window held 100 entries; the group reaching past it is counted in full.
    assert groups[0]["task_id"] == 1001 and groups[-1]["event_id"] == "commit-1"
