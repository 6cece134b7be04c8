"""What each build environment provides, for summit's planners: a build dependency that no
recipe and no package of the channel provides resolves against the repository's environment,
and against nothing else (never a builder's host).

The provides come from vessel's signed record of the environment (``environments/<digest>
.json``), checked with vessel's public key when summit has it (``[summit] vessel_key``), and
kept in memory: a digest names one environment forever. When vessel cannot be read, the
planner goes on without them (such dependencies show ``unresolvable``) and the scheduler asks
again on its next ticks, at most every ``retry_s``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from daemon.buildenv import remote
from daemon.buildenv.errors import BuildEnvError
from daemon.buildenv.manifest import EnvRecord, decode_record, env_url, record_name

log = structlog.get_logger("cairn.summit")


class EnvironmentCatalogue:
    """Environments' provides by digest, read from vessel at ``base_url``."""

    def __init__(self, base_url: str | None, key: Path | None = None, *,
                 timeout: float = 10.0, retry_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.base_url = base_url
        self.key = key
        self.timeout = timeout
        self.retry_s = retry_s
        self.clock = clock
        self._known: dict[str, frozenset[str]] = {}
        self._failed: dict[str, float] = {}

    def known(self, digest: str) -> frozenset[str] | None:
        return self._known.get(digest)

    async def fetch(self, digest: str | None) -> frozenset[str] | None:
        """The provides of ``digest`` (empty for none); ``None``: not readable now."""
        if digest is None:
            return frozenset()
        if digest in self._known:
            return self._known[digest]
        failed = self._failed.get(digest)
        if failed is not None and self.clock() - failed < self.retry_s:
            return None
        try:
            record = await asyncio.to_thread(self._record, digest)
        except BuildEnvError as exc:
            self._failed[digest] = self.clock()
            log.warning("summit.environment_unreadable", environment=digest, error=str(exc),
                        hint="its build dependencies resolve against the channel only "
                             "until vessel lists it")
            return None
        provides = frozenset(record.manifest.provides)
        self._known[digest] = provides
        self._failed.pop(digest, None)
        log.info("summit.environment_read", environment=digest, name=record.manifest.name,
                 provides=len(provides), verified=self.key is not None)
        return provides

    def _record(self, digest: str) -> EnvRecord:
        if not self.base_url:
            raise BuildEnvError("summit has no repository_url to read environments from")
        if self.key is not None:
            origin = remote.origin_with_key_file(self.base_url, self.key, self.timeout)
            return remote.fetch_record(origin, digest)
        url = env_url(self.base_url, record_name(digest))
        record = decode_record(remote.get(url, self.timeout), what=url)
        if record.digest != digest:
            raise BuildEnvError(f"{url} describes sha256:{record.digest}, not sha256:{digest}")
        return record
