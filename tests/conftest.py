"""Fixtures shared by every test directory. Keep this small: one fixture per real need."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

#: Private brokers (and, later, hosts) that tests start for themselves, and a served vessel
#: state: tests/support.
pytest_plugins = ["tests.support.fixtures", "tests.support.envserve"]

RABBITMQ_HOST = os.environ.get("CAIRN_TEST_RABBITMQ_HOST", "127.0.0.1")
RABBITMQ_PORT = int(os.environ.get("CAIRN_TEST_RABBITMQ_PORT", "5672"))


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def rabbitmq_unavailable(reason: str) -> None:
    """In CI a missing broker is a failure (the RabbitMQ half must really run); on a
    developer's machine without one, a skip that says what is missing."""
    if _in_ci():
        pytest.fail(f"RabbitMQ is required in CI (CI=true): {reason}", pytrace=False)
    pytest.skip(f"RabbitMQ not available: {reason} (start it, or run .ci/run)")


def _rabbitmqctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["rabbitmqctl", *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture(scope="session")
def rabbitmq_url() -> Iterator[str]:
    """``amqp://`` URL of a fresh vhost on the local RabbitMQ, deleted after the session.

    A private vhost keeps the tests' exchanges and queues away from anything else on the
    broker (other test runs included)."""
    try:
        socket.create_connection((RABBITMQ_HOST, RABBITMQ_PORT), timeout=2).close()
    except OSError as exc:
        rabbitmq_unavailable(f"nothing listens on {RABBITMQ_HOST}:{RABBITMQ_PORT} ({exc})")
    if shutil.which("rabbitmqctl") is None and not os.path.exists("/usr/sbin/rabbitmqctl"):
        rabbitmq_unavailable("rabbitmqctl is not installed (needed to create a test vhost)")
    vhost = f"cairn-test-{uuid.uuid4().hex[:10]}"
    for args in (("add_vhost", vhost), ("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")):
        done = _rabbitmqctl(*args)
        if done.returncode != 0:
            rabbitmq_unavailable(f"rabbitmqctl {' '.join(args)} failed: {done.stderr.strip()}")
    try:
        yield f"amqp://guest:guest@{RABBITMQ_HOST}:{RABBITMQ_PORT}/{vhost}"
    finally:
        _rabbitmqctl("await_startup")
        _rabbitmqctl("delete_vhost", vhost)


def _new_vhost() -> str:
    """A vhost the guest user may use entirely (two rabbitmqctl calls, a second or so each)."""
    vhost = f"cairn-test-{uuid.uuid4().hex[:10]}"
    for args in (("add_vhost", vhost), ("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")):
        done = _rabbitmqctl(*args)
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {done.stderr.strip()}")
    return vhost


class _Vhosts:
    """Private vhosts made one ahead and deleted in the background: a test waits for
    neither (``rabbitmqctl`` starts an Erlang VM each time)."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="vhosts")
        self._next: Future[str] = self._pool.submit(_new_vhost)
        self._deleting: list[Future[object]] = []

    def take(self) -> str:
        ready, self._next = self._next, self._pool.submit(_new_vhost)
        return ready.result()

    def give_back(self, vhost: str) -> None:
        self._deleting.append(self._pool.submit(_rabbitmqctl, "delete_vhost", vhost))

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.give_back(self._next.result())
        for done in self._deleting:
            done.result()
        self._pool.shutdown()


@pytest.fixture(scope="session")
def _vhosts(rabbitmq_url: str) -> Iterator[_Vhosts]:
    vhosts = _Vhosts()
    try:
        yield vhosts
    finally:
        vhosts.close()


@pytest.fixture
def private_rabbitmq_url(rabbitmq_url: str, _vhosts: _Vhosts) -> Iterator[str]:
    """A vhost of its own for one test: for tests whose services use the real queue names
    (``cairn.work.x86_64``, ``cairn.summit``) and must not see another test's leftovers."""
    try:
        vhost = _vhosts.take()
    except RuntimeError as exc:
        rabbitmq_unavailable(str(exc))
    try:
        yield rabbitmq_url.rsplit("/", 1)[0] + "/" + vhost
    finally:
        _vhosts.give_back(vhost)


@pytest.fixture(scope="session")
def debian_environment() -> Iterator[object]:
    """The bundled Debian build environment, unpacked and held in use for the session
    (:mod:`tests.buildenv_cache`): yields a :class:`daemon.buildenv.cache.CachedEnvironment`.
    Without ``mmdebstrap`` it fails in CI and skips elsewhere."""
    from daemon.buildenv.cache import EnvironmentCache
    from tests.buildenv_cache import cached_environment

    if shutil.which("mmdebstrap") is None:
        reason = "mmdebstrap is not installed (tests/run installs it)"
        if _in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    built = cached_environment()
    cache = EnvironmentCache(built.cache_dir, keep=2)
    if not cache.has(built.record.digest):
        cache.add(built.archive, built.record)
    with cache.use(built.record.digest) as env:
        yield env
