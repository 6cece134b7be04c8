"""vessel stores and signs environments; a builder's cache pulls them over real HTTP from
vessel's own server, verifies digest and signature, unpacks once, and evicts by LRU while
never evicting one in use (held by another real process)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from daemon.buildenv.cache import EnvironmentCache
from daemon.buildenv.errors import BuildEnvError
from daemon.buildenv.manifest import archive_name, record_name
from daemon.buildenv.remote import Origin, fetch_listing
from daemon.vessel import minisign
from daemon.vessel.config import check_channel
from daemon.vessel.environments import EnvironmentStore, env_dir
from events.errors import ConfigError
from tests.support.envserve import vessel_store

from .support import packed

MINISIGN = shutil.which("minisign")


def test_push_stores_signs_and_lists_once(tmp_path: Path) -> None:
    store = vessel_store(tmp_path / "vessel")
    record, path = packed(tmp_path, "one")
    stored, new = store.push(path)
    assert new and stored == record
    again, new_again = store.push(path)
    assert not new_again and again == record
    other, other_path = packed(tmp_path, "two")
    store.push(other_path)
    listing = store.listing()
    assert [e.digest for e in listing.environments] == [record.digest, other.digest]
    assert store.resolve("env-one") == record.digest
    assert store.resolve(f"sha256:{record.digest[:12]}") == record.digest
    with pytest.raises(BuildEnvError, match="matches no"):
        store.resolve("nothing")
    files = sorted(p.name for p in env_dir(store.layout).iterdir())
    assert archive_name(record.digest) in files and record_name(record.digest) in files
    assert not [f for f in files if f.startswith(".")]


@pytest.mark.skipif(MINISIGN is None, reason="the minisign binary is not installed")
def test_records_and_listing_verify_with_stock_minisign(tmp_path: Path) -> None:
    store = vessel_store(tmp_path / "vessel")
    record, path = packed(tmp_path, "one")
    store.push(path)
    directory = env_dir(store.layout)
    for name in (record_name(record.digest), "index.json"):
        done = subprocess.run([MINISIGN, "-V", "-p", str(store.layout.public_key), "-m",
                               str(directory / name)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr


def test_a_channel_cannot_take_the_environments_name() -> None:
    with pytest.raises(ConfigError, match="environments"):
        check_channel("environments")


async def test_served_with_the_right_caching(served_vessel: tuple[EnvironmentStore, str],
                                             tmp_path: Path) -> None:
    store, url = served_vessel
    record, path = packed(tmp_path, "one")
    store.push(path)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/environments/index.json") as listing:
            assert listing.status == 200 and listing.headers["Cache-Control"] == "no-cache"
        async with http.get(f"{url}/environments/{archive_name(record.digest)}") as blob:
            assert blob.status == 200 and "immutable" in blob.headers["Cache-Control"]
            assert await blob.read() == path.read_bytes()


async def test_cache_pulls_verifies_and_unpacks_once(served_vessel: tuple[EnvironmentStore, str],
                                                     tmp_path: Path) -> None:
    store, url = served_vessel
    record, path = packed(tmp_path, "one")
    store.push(path)
    origin = Origin(url, store.key.public)
    cache = EnvironmentCache(tmp_path / "cache")

    def pull() -> str:
        with cache.use(record.digest, origin) as env:
            assert env.manifest == record.manifest
            return (env.root / "usr/bin/tool").read_text()

    assert (await asyncio.to_thread(pull)).endswith("echo one\n")
    # Cached: vessel losing the archive no longer matters.
    (env_dir(store.layout) / archive_name(record.digest)).unlink()
    assert (await asyncio.to_thread(pull)).endswith("echo one\n")
    listing = await asyncio.to_thread(fetch_listing, origin)
    assert [e.name for e in listing.environments] == ["env-one"]


async def test_a_tampered_archive_or_record_is_refused(served_vessel: tuple[EnvironmentStore, str],
                                                       tmp_path: Path) -> None:
    store, url = served_vessel
    record, path = packed(tmp_path, "one")
    store.push(path)
    directory = env_dir(store.layout)
    origin = Origin(url, store.key.public)
    cache = EnvironmentCache(tmp_path / "cache")

    def pull(o: Origin) -> None:
        with cache.use(record.digest, o):
            pass

    wrong_key = Origin(url, minisign.SecretKey.generate().public)
    with pytest.raises(BuildEnvError, match="does not verify with vessel's key"):
        await asyncio.to_thread(pull, wrong_key)
    blob = directory / archive_name(record.digest)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(BuildEnvError, match="altered or damaged"):
        await asyncio.to_thread(pull, origin)
    record_file = directory / record_name(record.digest)
    record_file.write_bytes(record_file.read_bytes().replace(b'"env-one"', b'"env-evil"'))
    with pytest.raises(BuildEnvError, match="data was altered"):
        await asyncio.to_thread(pull, origin)
    assert not cache.has(record.digest)
    assert list((tmp_path / "cache" / "tmp").iterdir()) == []


_HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_SH)
print("held", flush=True)
sys.stdin.read()
"""


def test_lru_eviction_never_takes_one_in_use(tmp_path: Path) -> None:
    cache = EnvironmentCache(tmp_path / "cache", keep=1)
    envs = [packed(tmp_path, m) for m in ("a", "b", "c")]
    first = cache.add(envs[0][1], envs[0][0])
    # Another process uses the first environment (a build in progress).
    holder = subprocess.Popen([sys.executable, "-c", _HOLD,
                               str(tmp_path / "cache" / "locks" / f"{first.digest}.use")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        os.utime(tmp_path / "cache" / "envs" / first.digest / "last-used", (1, 1))
        cache.add(envs[1][1], envs[1][0])
        assert cache.evict() == []  # b is newest; a is older but in use
        assert {e.digest for e in cache.entries() if e.in_use} == {first.digest}
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=10)
        if holder.stdout is not None:
            holder.stdout.close()
    third = cache.add(envs[2][1], envs[2][0])
    os.utime(tmp_path / "cache" / "envs" / third.digest / "last-used", None)
    evicted = cache.evict()
    assert set(evicted) == {first.digest, envs[1][0].digest}
    assert [e.digest for e in cache.entries()] == [third.digest]
    with pytest.raises(BuildEnvError, match="not in the cache"), cache.use(first.digest):
        pass


def test_a_local_archive_must_match_its_record(tmp_path: Path) -> None:
    cache = EnvironmentCache(tmp_path / "cache")
    record, _path = packed(tmp_path, "a")
    _other, other_path = packed(tmp_path, "b")
    with pytest.raises(BuildEnvError, match=r"bytes; its record says|altered"):
        cache.add(other_path, record)
    assert cache.entries() == []
