"""With bubblewrap present, a build cannot write outside its tree nor reach the network."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from pathlib import Path

import pytest

from daemon.avalanche.build import run_build
from daemon.avalanche.config import SandboxMode
from events.payloads import Outcome
from tests.integration.test_avalanche_outcomes import _recipe
from tests.unit.avalanche.support import config, task_for

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")


@pytest.mark.parametrize("where", ["test-tmp", "home"])
def test_build_cannot_write_outside_its_directories(tmp_path: Path, where: str) -> None:
    if where == "home":
        target = Path.home() / f".cairn-sandbox-probe-{uuid.uuid4().hex}"
    else:
        outside = tmp_path / "outside"
        outside.mkdir()
        target = outside / "escaped.txt"
    repo, commit = _recipe(tmp_path, "escape", f"echo escaped > {target}")
    cfg = config(tmp_path / "b", sandbox=SandboxMode.BWRAP)
    try:
        result = run_build(task_for(repo, commit, "escape"), cfg)
        assert result.outcome is Outcome.FAILED
        assert result.reason is not None and "step build" in result.reason
        assert not target.exists()
    finally:
        target.unlink(missing_ok=True)


async def test_network_is_unavailable_inside(tmp_path: Path) -> None:
    connections: list[object] = []

    async def handle(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        build = f"exec 3<>/dev/tcp/127.0.0.1/{port}\necho connected"
        repo, commit = _recipe(tmp_path, "net", build)
        cfg = config(tmp_path / "b", sandbox=SandboxMode.BWRAP)
        result = await asyncio.to_thread(run_build, task_for(repo, commit, "net"), cfg)
    finally:
        server.close()
        await server.wait_closed()
    assert result.outcome is Outcome.FAILED
    assert "connected" not in result.log_path.read_text().splitlines()
    assert connections == []
