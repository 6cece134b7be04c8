"""Sources over real HTTP with hash checks and a cache; artefacts served read-only."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import aiohttp
import pytest

from daemon.avalanche.artefacts import ArtefactServer, ArtefactStore
from daemon.avalanche.errors import SourceError
from daemon.avalanche.sources import prepare_sources
from daemon.formats.upstreams import PlainUpstream as Upstream
from tests.unit.avalanche.support import serve_dir

DATA = b"upstream tarball stand-in\n"
SHA = hashlib.sha256(DATA).hexdigest()


def _prepare(upstreams: tuple[Upstream, ...], tmp: Path, recipe_dir: Path) -> list[str]:
    lines: list[str] = []
    prepare_sources(upstreams, recipe_dir, tmp / "work", tmp / "src", tmp / "cache",
                    timeout=10, log=lines.append)  # fmt: skip
    return lines


async def test_http_source_verified_and_cached(tmp_path: Path) -> None:
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "thing.txt").write_bytes(DATA)
    async with serve_dir(tmp_path / "www") as base:
        up = (Upstream(url=f"{base}/thing.txt", hash=SHA),)
        first = await asyncio.to_thread(_prepare, up, tmp_path / "one", tmp_path)
        wrong = (Upstream(url=f"{base}/thing.txt", hash="cd" * 32),)
        with pytest.raises(SourceError) as info:
            await asyncio.to_thread(_prepare, wrong, tmp_path / "two", tmp_path)
    assert (tmp_path / "one" / "work" / "thing.txt").read_bytes() == DATA
    assert "(cached)" not in first[0]
    message = str(info.value)
    assert f"{base}/thing.txt" in message and "cd" * 32 in message
    assert SHA not in message  # a download's actual hash is never echoed
    # The server is gone: the same hash is served from the cache.
    (tmp_path / "one" / "cache").rename(tmp_path / "three-cache")
    (tmp_path / "three").mkdir()
    (tmp_path / "three-cache").rename(tmp_path / "three" / "cache")
    again = _prepare(up, tmp_path / "three", tmp_path)
    assert "(cached)" in again[0]


def test_relative_source_must_stay_in_recipe(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="inside the recipe"):
        _prepare((Upstream(url="../secret", hash=SHA),), tmp_path / "b", tmp_path / "recipe")


@pytest.mark.parametrize("url", ["file:///etc/passwd", "FILE:///etc/passwd", "file:/etc/passwd",
                                 "/etc/passwd", "sub/../../etc/passwd", "ftp://host/x.tar",
                                 "sub/./../x"])  # fmt: skip
def test_host_files_are_never_upstreams(tmp_path: Path, url: str) -> None:
    recipe = tmp_path / "recipe"
    (recipe / "sub").mkdir(parents=True)
    with pytest.raises(SourceError) as info:
        _prepare((Upstream(url=url, hash=SHA),), tmp_path / "b", recipe)
    assert "recipe's directory" in str(info.value)
    assert not (tmp_path / "b" / "cache" / "sources").exists()


def test_a_link_out_of_the_recipe_is_not_followed(tmp_path: Path) -> None:
    recipe = tmp_path / "recipe"
    recipe.mkdir()
    (recipe / "passwd").symlink_to("/etc/passwd")
    (recipe / "up").symlink_to("..")
    (tmp_path / "outside.txt").write_bytes(DATA)
    for url in ("passwd", "up/outside.txt"):
        with pytest.raises(SourceError, match="leads out of the recipe's directory"):
            _prepare((Upstream(url=url, hash=SHA),), tmp_path / "b", recipe)


def test_a_recipe_file_with_a_wrong_hash_names_its_actual_hash(tmp_path: Path) -> None:
    recipe = tmp_path / "recipe"
    recipe.mkdir()
    (recipe / "data.txt").write_bytes(DATA)
    with pytest.raises(SourceError) as info:
        _prepare((Upstream(url="data.txt", hash="ab" * 32),), tmp_path / "b", recipe)
    assert SHA in str(info.value)  # the recipe's own file: its author may see its hash


async def test_artefacts_served_read_only_until_released(tmp_path: Path) -> None:
    store = ArtefactStore(tmp_path / "artefacts", retention_s=3600)
    build = tmp_path / "artefacts" / "7-abcd"
    build.mkdir(parents=True)
    (build / "x-1-1-1-x86_64.tar.zst").write_bytes(b"package")
    (build / "build.log").write_text("log line\n")
    (tmp_path / "secret").write_text("no")
    server = ArtefactServer(store)
    base = await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/artefacts/7-abcd/x-1-1-1-x86_64.tar.zst") as r:
                assert r.status == 200 and await r.read() == b"package"
            async with http.get(f"{base}/artefacts/7-abcd/build.log") as r:
                assert await r.text() == "log line\n"
            async with http.get(f"{base}/artefacts/7-abcd/..%2F..%2Fsecret") as r:
                assert r.status == 404
            async with http.put(f"{base}/artefacts/7-abcd/new", data=b"x") as r:
                assert r.status == 405
            assert store.release(7) == 1
            async with http.get(f"{base}/artefacts/7-abcd/build.log") as r:
                assert r.status == 404
    finally:
        await server.stop()


def test_prune_removes_only_expired(tmp_path: Path) -> None:
    store = ArtefactStore(tmp_path, retention_s=100)
    (tmp_path / "1-aa").mkdir()
    (tmp_path / "2-bb").mkdir()
    os.utime(tmp_path / "1-aa", (1000, 1000))
    os.utime(tmp_path / "2-bb", (1200, 1200))
    assert store.prune(now=1150) == 1
    assert not (tmp_path / "1-aa").exists() and (tmp_path / "2-bb").exists()
