"""The highest index generation this client has seen, per repository, channel, arch and key.

Why: a signature proves an index was signed, not that it is the latest. Whoever serves the
repository (a mirror, a proxy, an attacker in between) can replay an older signed index and
hide every fix published since. Generation numbers only grow, so a client that remembers
the highest one it verified can refuse a ``current`` that went back.

Why per signing key: without ``--key`` the client trusts the key the repository serves, so
anyone serving it can sign an index with a key of their own and any generation number. Such
a record lives under that other key and never raises the bar for the real one.

The state is a small JSON file (``$CAIRN_STATE_DIR/repo-seen.json`` by default), rewritten
atomically under a lock file so that concurrent runs keep the highest value.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import msgspec

from daemon.paths import default_state_dir
from events.errors import CairnError

FORMAT = 1


class SeenStateError(CairnError):
    """The state file cannot be read or written; it is never reset silently."""


class Seen(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    repository: str
    channel: str
    arch: str
    key_id: str
    generation: int


class SeenFile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    format: int = FORMAT
    seen: list[Seen] = msgspec.field(default_factory=list)


def default_seen_path() -> Path:
    return default_state_dir() / "repo-seen.json"


def repository_id(location: str) -> str:
    """One spelling per repository: a URL without trailing slashes, or an absolute path."""
    if urlsplit(location).scheme in ("http", "https"):
        return location.rstrip("/")
    return str(Path(location).resolve())


class SeenGenerations:
    """Read and raise the highest generation seen, in the state file at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def highest(self, repository: str, channel: str, arch: str, key_id: str) -> int | None:
        with self._locked():
            record = self._find(self._load(), repository, channel, arch, key_id)
        return None if record is None else record.generation

    def record(self, repository: str, channel: str, arch: str, key_id: str, generation: int,
               *, replace: bool = False) -> None:
        """Remember ``generation`` if it is higher (or, with ``replace``, in any case)."""
        with self._locked():
            state = self._load()
            old = self._find(state, repository, channel, arch, key_id)
            if old is not None and old.generation >= generation and not replace:
                return
            kept = [s for s in state.seen if s is not old]
            kept.append(Seen(repository=repository, channel=channel, arch=arch, key_id=key_id,
                             generation=generation))
            kept.sort(key=lambda s: (s.repository, s.channel, s.arch, s.key_id))
            self._save(SeenFile(seen=kept))

    @staticmethod
    def _find(state: SeenFile, repository: str, channel: str, arch: str,
              key_id: str) -> Seen | None:
        return next((s for s in state.seen if (s.repository, s.channel, s.arch, s.key_id)
                     == (repository, channel, arch, key_id)), None)

    def _load(self) -> SeenFile:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return SeenFile()
        except OSError as exc:
            raise SeenStateError(f"cannot read {self.path}: {exc.strerror}") from None
        try:
            state = msgspec.json.decode(data, type=SeenFile)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise SeenStateError(f"{self.path} is not a generation record ({exc}); fix or "
                                 "remove it (removing it forgets every generation seen)"
                                 ) from None
        if state.format != FORMAT:
            raise SeenStateError(f"{self.path} has format {state.format}; this cairn reads "
                                 f"format {FORMAT}")
        return state

    def _save(self, state: SeenFile) -> None:
        temporary: str | None = None
        try:
            fd, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".seen-")
            with os.fdopen(fd, "wb") as handle:
                handle.write(msgspec.json.format(msgspec.json.encode(state)) + b"\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
            temporary = None
        except OSError as exc:
            raise SeenStateError(f"cannot write {self.path}: {exc.strerror}") from None
        finally:
            if temporary is not None:
                Path(temporary).unlink(missing_ok=True)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock = self.path.with_name(self.path.name + ".lock").open("a")
        except OSError as exc:
            raise SeenStateError(f"cannot use {self.path.parent}: {exc.strerror}") from None
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield
