"""A vessel state holding one build environment, served over real HTTP on 127.0.0.1: what a
builder pulls an environment from by digest (``environment_url`` and ``environment_key``).
Shared by the tests that build in an environment (the bundled one, the macro families')."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from daemon.vessel import minisign
from daemon.vessel.config import VesselConfig
from daemon.vessel.environments import EnvironmentStore


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


@contextmanager
def served_environment(archive: Path, state: Path) -> Iterator[Served]:
    """``archive`` pushed into a new vessel state at ``state``, served until the block ends."""
    layout = VesselConfig(state_dir=state).layout
    layout.root.mkdir(parents=True)
    key = minisign.load_or_create_key(layout.secret_key)
    record, _new = EnvironmentStore(layout, key).push(archive)
    pub = state / "vessel.pub"
    pub.write_text(key.public.to_file_text())
    handler = functools.partial(_Quiet, directory=str(layout.root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Served(f"http://127.0.0.1:{server.server_address[1]}", pub, record.digest, state)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
