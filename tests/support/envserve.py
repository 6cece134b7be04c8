"""A vessel state holding build environments, served over real HTTP on 127.0.0.1: what a
builder pulls an environment from by digest (``environment_url`` and ``environment_key``),
and what summit reads an environment's provides from.

- :func:`served_environment` — one archive pushed and served from a thread, for builds in
  other processes (the tests that build in the bundled environment, the macro families').
- ``served_vessel`` (a fixture, loaded by ``tests/conftest.py``) — an empty vessel state
  served by vessel's own HTTP app in the test's event loop; push into it as the test goes.
"""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web

from daemon.vessel import minisign
from daemon.vessel.config import VesselConfig
from daemon.vessel.environments import EnvironmentStore
from daemon.vessel.http import make_app


@dataclass(frozen=True)
class Served:
    #: vessel's base URL, its minisign public key, the environment's digest, and vessel's
    #: state directory (which builds must not see: pass it as ``hidden``).
    url: str
    key: Path
    digest: str
    state: Path


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def vessel_store(state: Path) -> EnvironmentStore:
    """A new vessel state at ``state``: its key pair made, its public key published."""
    layout = VesselConfig(state_dir=state).layout
    layout.root.mkdir(parents=True)
    key = minisign.load_or_create_key(layout.secret_key)
    layout.public_key.write_text(key.public.to_file_text())
    return EnvironmentStore(layout, key)


@asynccontextmanager
async def vessel_http(store: EnvironmentStore) -> AsyncIterator[str]:
    """``store``'s repository served by vessel's own HTTP app on 127.0.0.1; its URL."""
    runner = web.AppRunner(make_app(store.layout.root))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def served_vessel(tmp_path: Path) -> AsyncIterator[tuple[EnvironmentStore, str]]:
    """An empty vessel state in ``tmp_path / "vessel"``, served: the store and its URL."""
    store = vessel_store(tmp_path / "vessel")
    async with vessel_http(store) as url:
        yield store, url


@contextmanager
def served_environment(archive: Path, state: Path) -> Iterator[Served]:
    """``archive`` pushed into a new vessel state at ``state``, served until the block ends."""
    store = vessel_store(state)
    record, _new = store.push(archive)
    pub = state / "vessel.pub"
    pub.write_text(store.key.public.to_file_text())
    handler = functools.partial(_Quiet, directory=str(store.layout.root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Served(f"http://127.0.0.1:{server.server_address[1]}", pub, record.digest, state)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
