"""Vessel imports over real HTTP: signed generations, hostile artefacts, idempotence, channels."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest
from aiohttp import web

from daemon.formats.index import IndexRoot, PartRef, read_root
from daemon.vessel import channels
from daemon.vessel.errors import RepositoryError
from events.payloads import PublishFailed
from tests.integration.vessel_env import Env, environment, import_pkgs
from tests.unit.vessel.builders import Pkg, add_member, build_done

REPO_ROOT = Path(__file__).resolve().parents[2]
MINISIGN = shutil.which("minisign")


def hello(release: int = 1, **kw: object) -> list[Pkg]:
    return [
        Pkg(name="hello", source="hello", release=release,
            files={"usr/bin/hello": b"hello v%d\n" % release}, **kw),  # type: ignore[arg-type]
        Pkg(name="hello-devel", source="hello", release=release,
            files={"usr/include/hello.h": b"int hello(void);\n"},
            symlinks={"usr/lib/libhello.so": "libhello.so.1"}),
    ]


def cairn(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a subprocess, its own state (``repo verify``'s generations) under ``home``.
    The packages these tests publish are built on the host: ``channel verify`` is told to
    accept packages that are not hermetic."""
    env = {**os.environ, "CAIRN_STATE_DIR": str(home / "client-state")}
    if args[:2] == ("channel", "verify"):
        args = (*args, "--allow-not-hermetic")
    return subprocess.run([sys.executable, "-m", "daemon.cli", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60, env=env)


def minisign_verify(env: Env, channel: str = "volatile") -> subprocess.CompletedProcess[str]:
    assert MINISIGN is not None
    index = env.config.layout.current(channel, "x86_64") / "index.json"
    return subprocess.run([MINISIGN, "-V", "-p", str(env.config.layout.public_key), "-m",
                           str(index)], capture_output=True, text=True)


def served_files(env: Env) -> set[str]:
    root = env.config.layout.root
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.mark.skipif(MINISIGN is None, reason="the minisign binary is not installed")
async def test_import_publishes_a_signed_verifiable_generation(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        outcome = await import_pkgs(env, hello())
        assert outcome.published is not None and outcome.refused is None
        assert outcome.published.generation == 1
        assert await env.outbox_types() == ["package-published"]
        index = env.current_index()
        assert [p.name for p in index.packages] == ["hello", "hello-devel"]
        for entry in index.packages:
            pooled = env.config.layout.current("volatile", "x86_64") / entry.uri
            assert hashlib.sha256(pooled.read_bytes()).hexdigest() == entry.sha256
        assert not any(env.config.layout.tmp.iterdir())

        assert minisign_verify(env).returncode == 0
        root = str(env.config.layout.root)
        ok = cairn(tmp_path, "channel", "verify", root, "--arch", "x86_64")
        assert ok.returncode == 0, ok.stderr
        assert "2 packages match" in ok.stdout

        index_file = env.config.layout.current("volatile", "x86_64") / "index.json"
        _flip_byte(index_file, 40)
        assert minisign_verify(env).returncode != 0
        bad = cairn(tmp_path, "channel", "verify", root, "--arch", "x86_64")
        assert bad.returncode == 1
        assert "data was altered" in bad.stderr
        _flip_byte(index_file, 40)
        assert cairn(tmp_path, "channel", "verify", root, "--arch", "x86_64").returncode == 0

        # Only the root is signed; each part it lists is checked by its sha256, by cairn and
        # by sha256sum alike.
        (part,) = read_root_parts(index_file)
        part_file = index_file.parent / part.uri
        assert sha256sum(part_file) == part.sha256
        _flip_byte(part_file, 10)
        assert minisign_verify(env).returncode == 0
        assert sha256sum(part_file) != part.sha256
        bad = cairn(tmp_path, "channel", "verify", root, "--arch", "x86_64")
        assert bad.returncode == 1
        assert f"part {part.uri} has sha256" in bad.stderr
        _flip_byte(part_file, 10)

        pool_file = env.config.layout.current("volatile", "x86_64") / index.packages[0].uri
        _flip_byte(pool_file, 100)
        bad = cairn(tmp_path, "channel", "verify", root, "--arch", "x86_64", "--key",
                    str(env.config.layout.public_key))
        assert bad.returncode == 1
        assert f"hello: {index.packages[0].uri} has sha256" in bad.stderr


def read_root_parts(path: Path) -> list[PartRef]:
    root = read_root(path.read_bytes())
    assert isinstance(root, IndexRoot)
    return root.parts


def sha256sum(path: Path) -> str:
    """What coreutils' sha256sum says of ``path`` (the tool a user checks a part with)."""
    out = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True, check=True)
    return out.stdout.split()[0]


def _flip_byte(path: Path, offset: int) -> None:
    # Generation files are immutable by policy, not by permission: the test plays attacker.
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


async def test_second_import_of_the_same_build_changes_nothing(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        pkgs = hello()
        first = await import_pkgs(env, pkgs)
        before = served_files(env)
        requests = len(env.server.requests)
        second = await import_pkgs(env, pkgs)
        assert first.published is not None
        assert second.duplicate
        assert second.published == dataclasses.replace(first.published, duplicate=True)
        assert served_files(env) == before
        assert len(env.server.requests) == requests  # not even downloaded again
        rows = await env.db.fetchall("SELECT COUNT(*) FROM vessel_generations")
        assert rows[0][0] == 1


async def test_release_must_be_newer(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        await import_pkgs(env, hello(release=2), release=2)
        older = await import_pkgs(env, hello(release=1), release=1, task_id=2)
        assert older.refused is not None
        assert "hello 1-1 is not newer than 2-1 already in volatile/x86_64" in str(older.refused)
        changed = hello(release=2)
        changed[0].files["usr/bin/hello"] = b"other bytes"
        same = await import_pkgs(env, changed, release=2, task_id=3)
        assert same.refused is not None and "with different artefacts" in str(same.refused)
        newer = await import_pkgs(env, hello(release=3), release=3, task_id=4)
        assert newer.published is not None and newer.published.generation == 2
        assert [p.release for p in env.current_index().packages] == [3, 3]
        assert await env.outbox_types() == ["package-published", "publish-failed",
                                            "publish-failed", "package-published"]


async def test_imports_ready_during_a_publication_go_into_one_generation(
        tmp_path: Path) -> None:
    evil = Pkg(name="hello", source="evil", release=9, files={"usr/bin/hello": b"!"})
    async with environment(tmp_path) as env:
        alone = await import_pkgs(env, hello())
        async with env.importer._publishing:  # as if a publication were running
            others = [asyncio.create_task(import_pkgs(env, pkgs, release=release, task_id=t))
                      for pkgs, release, t in (
                          ([Pkg(name="zlib", files={"usr/lib/libz.so.1": b"z"})], 1, 2),
                          ([evil], 9, 3),  # another source's hello: refused in the group
                          ([Pkg(name="xz", files={"usr/bin/xz": b"x"})], 1, 4))]
            await _until(lambda: len(env.importer._waiting) == 3)
        zlib, refused, xz = [await t for t in others]
        assert alone.published is not None and alone.published.generation == 1
        assert refused.refused is not None and "hello" in str(refused.refused)
        assert zlib.published is not None and xz.published is not None
        assert zlib.published.generation == xz.published.generation == 2
        assert [p.name for p in env.current_index().packages] == [
            "hello", "hello-devel", "xz", "zlib"]
        assert sorted(await env.outbox_types()) == [
            "package-published", "package-published", "package-published", "publish-failed"]


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(3000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the imports did not get there in 30 s")


async def test_a_new_build_replaces_its_sources_packages_only(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        await import_pkgs(env, hello())
        await import_pkgs(env, [Pkg(name="zlib", files={"usr/lib/libz.so.1": b"z"})], task_id=2)
        # release 2 of hello drops hello-devel: it leaves the index, zlib stays.
        await import_pkgs(env, hello(release=2)[:1], release=2, task_id=3)
        names = [(p.name, p.release) for p in env.current_index().packages]
        assert names == [("hello", 2), ("zlib", 1)]


def _sha_mismatch(env: Env) -> list[object]:
    artefact = env.server.add(hello()[0])
    return [artefact.__class__(**{**msgspec.structs.asdict(artefact), "sha256": "0" * 64})]


HOSTILE = [
    ("sha256", None, "sha256 is "),
    ("dotdot", add_member("../../escape"), "'../../escape' has a '..' component"),
    ("absolute", add_member("/etc/cron.d/evil"), "'/etc/cron.d/evil' has an absolute path"),
    ("symlink", add_member("usr/etc", tarfile.SYMTYPE, linkname="/etc"),
     "symlink 'usr/etc' points to '/etc'"),
    ("device", add_member("dev/sda", tarfile.BLKTYPE), "'dev/sda' is a block device"),
    ("setuid", add_member("usr/bin/su", mode=0o4755),
     "file 'usr/bin/su' has mode 4755 (setuid)"),
    ("loop", add_member("usr/lib/a", tarfile.SYMTYPE, linkname="a"),
     "symlink 'usr/lib/a' -> 'a' is part of a symlink loop"),
]


@pytest.mark.parametrize(("case", "tweak", "reason"), HOSTILE, ids=[h[0] for h in HOSTILE])
async def test_hostile_artefacts_are_refused_and_nothing_is_written(
    tmp_path: Path, case: str, tweak: object, reason: str
) -> None:
    async with environment(tmp_path) as env:
        before = served_files(env)
        if case == "sha256":
            artefacts = _sha_mismatch(env)
        else:
            honest, devel = hello(tweak=tweak)
            artefacts = [env.server.add(devel), env.server.add(honest)]  # the good one first
        build = build_done(artefacts, source="hello")  # type: ignore[arg-type]
        outcome = await env.importer.import_build(env.db, build, env.emit)
        assert outcome.refused is not None and outcome.published is None
        assert reason in outcome.refused.reason
        assert "hello-1.0-1-1-x86_64.tar.zst" in outcome.refused.reason
        assert not outcome.refused.retryable
        assert await env.outbox_types() == ["publish-failed"]
        await _assert_untouched(env, before)


async def _assert_untouched(env: Env, before: set[str]) -> None:
    assert served_files(env) == before == {"minisign.pub"}
    assert not any(env.config.layout.tmp.iterdir())
    rows = await env.db.fetchall("SELECT COUNT(*) FROM vessel_packages")
    assert rows[0][0] == 0


async def test_archive_over_the_limit_is_refused(tmp_path: Path) -> None:
    async with environment(tmp_path, max_artefact_bytes=4096) as env:
        big = Pkg(name="big", files={"usr/share/noise": os.urandom(20_000)})
        outcome = await import_pkgs(env, [big])
        assert outcome.refused is not None
        assert "over the limit of 4096" in outcome.refused.reason
        await _assert_untouched(env, {"minisign.pub"})


async def test_server_sending_more_than_declared_is_cut_off(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        pkg = hello()[0]
        artefact = env.server.add(pkg)
        env.server.files[pkg.filename] += b"\0" * 100_000
        lie = build_done([artefact], source="hello")
        outcome = await env.importer.import_build(env.db, lie, env.emit)
        assert outcome.refused is not None
        assert "server sends" in outcome.refused.reason or "sent more" in outcome.refused.reason
        await _assert_untouched(env, {"minisign.pub"})


async def test_per_file_limit_is_a_publish_failed_naming_file_and_limit(tmp_path: Path) -> None:
    async with environment(tmp_path, max_file_bytes=1000) as env:
        pkg = Pkg(name="big", files={"usr/share/big/blob": bytes(5000)})
        outcome = await import_pkgs(env, [pkg])
        assert outcome.refused is not None
        assert await env.outbox_types() == ["publish-failed"]
        event = outcome.event_payload()
        assert isinstance(event, PublishFailed) and not event.retryable
        assert event.reason == (
            "artefact big-1.0-1-1-x86_64.tar.zst: file 'usr/share/big/blob' is 5000 bytes, "
            "over the limit of 1000 bytes per file (max_file_bytes)")
        await _assert_untouched(env, {"minisign.pub"})


async def test_unpacked_limit_refuses_a_bomb(tmp_path: Path) -> None:
    async with environment(tmp_path, max_unpacked_bytes=50_000) as env:
        bomb = Pkg(name="bomb", files={"usr/zeros": bytes(5_000_000)})
        outcome = await import_pkgs(env, [bomb])
        assert outcome.refused is not None
        assert "limit of 50000 bytes" in outcome.refused.reason
        await _assert_untouched(env, {"minisign.pub"})


async def test_url_that_does_not_answer_is_retryable(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        artefact = env.server.add(hello()[0])
        dead = artefact.__class__(**{**msgspec.structs.asdict(artefact),
                                     "url": "http://127.0.0.1:9/artefacts/x.tar.zst"})
        outcome = await env.importer.import_build(env.db, build_done([dead], source="hello"),
                                                  env.emit)
        assert outcome.refused is not None and outcome.refused.retryable
        assert "download from http://127.0.0.1:9/" in outcome.refused.reason
        env.server.status[artefact.filename] = 503
        busy = await env.importer.import_build(env.db, build_done([artefact], source="hello"),
                                               env.emit)
        assert busy.refused is not None and busy.refused.retryable
        assert "HTTP 503" in busy.refused.reason
        env.server.status[artefact.filename] = 404
        gone = await env.importer.import_build(env.db, build_done([artefact], source="hello"),
                                               env.emit)
        assert gone.refused is not None and not gone.refused.retryable
        payload = gone.event_payload()
        assert payload.retryable is False  # type: ignore[union-attr]
        await _assert_untouched(env, {"minisign.pub"})


async def test_promote_rollback_and_prune(tmp_path: Path) -> None:
    async with environment(tmp_path, keep_generations=2) as env:
        for release in (1, 2, 3):
            await import_pkgs(env, hello(release=release), release=release, task_id=release)
        promoted = await channels.promote(env.repo, env.db, "volatile", "stable")
        assert [(p.arch, p.from_generation, p.generation) for p in promoted] == [
            ("x86_64", 3, 1)]
        assert env.current_index("stable").packages == env.current_index().packages
        root = str(env.config.layout.root)
        assert cairn(tmp_path, "channel", "verify", root, "--channel", "stable",
                     "--arch", "x86_64").returncode == 0

        # A rollback publishes generation 2's packages as a new generation: clients that saw 3
        # see a newer index, not an old one replayed.
        assert cairn(tmp_path, "channel", "verify", root, "--arch", "x86_64").returncode == 0
        back = await channels.rollback(env.repo, env.db, "volatile", 2)
        assert (back.arch, back.from_generation, back.generation) == ("x86_64", 2, 4)
        assert {p.release for p in env.current_index().packages} == {2}
        assert env.current_index().generation == 4
        verified = cairn(tmp_path, "channel", "verify", root, "--arch", "x86_64")
        assert verified.returncode == 0, verified.stderr
        assert "generation 4 (highest seen before: 3)" in verified.stdout
        # The CLI acts on the same state (another process, same database and lock).
        done = cairn(tmp_path, "vessel", "rollback", "volatile", "3", "--state",
                     str(tmp_path / "vessel"))
        assert done.returncode == 0, done.stderr
        assert "volatile/x86_64: generation 5 (the packages of generation 3)" in done.stdout
        assert {p.release for p in env.current_index().packages} == {3}
        with pytest.raises(RepositoryError, match="no generation 9"):
            await channels.rollback(env.repo, env.db, "volatile", 9)

        for release in (4, 5):
            await import_pkgs(env, hello(release=release), release=release, task_id=release)
        kept = [r[0] for r in await env.db.fetchall(
            "SELECT generation FROM vessel_generations WHERE channel = 'volatile' "
            "ORDER BY generation")]
        assert kept == [5, 6, 7]
        dirs = sorted(p.name for p in env.config.layout.arch_dir("volatile", "x86_64").iterdir())
        assert dirs == ["5", "6", "7", "current"]
        pooled = {p.name for p in env.config.layout.pool.rglob("*.tar.zst")}
        releases_kept = {3, 4, 5}
        assert len(pooled) == 2 * len(releases_kept)  # releases 1 and 2 left the pool
        # Parts no kept generation lists leave too; those listed stay, shared where equal.
        listed = {part.sha256 for n in kept
                  for part in read_root_parts(env.config.layout.generation_dir(
                      "volatile", "x86_64", n) / "index.json")}
        listed |= {part.sha256 for part in read_root_parts(
            env.config.layout.current("stable", "x86_64") / "index.json")}
        assert {p.name for p in env.config.layout.parts.iterdir()} == {
            f"{sha}.json" for sha in listed}


async def test_reconcile_removes_leftovers_and_fixes_current(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        await import_pkgs(env, hello())
        layout = env.config.layout
        arch_dir = layout.arch_dir("volatile", "x86_64")
        shutil.copytree(arch_dir / "1", arch_dir / "2")  # a generation that never committed
        (arch_dir / ".tmp-3-abcd").mkdir()
        os.replace(_symlink(arch_dir, "2"), arch_dir / "current")
        stray = layout.pool / "ff" / ("f" * 64 + ".tar.zst")
        stray.parent.mkdir()
        stray.write_bytes(b"orphan")
        (layout.tmp / "import-9-x").mkdir()
        shutil.rmtree(arch_dir / "1")  # and the committed one vanished
        (part,) = read_root_parts(arch_dir / "2" / "index.json")
        layout.part_file(part.sha256).unlink()  # with its part
        (layout.parts / ("e" * 64 + ".json")).write_bytes(b"[]")  # and a part nobody lists
        report = await env.repo.reconcile(env.db)
        assert sorted(p.name for p in report.removed_dirs) == [".tmp-3-abcd", "2"]
        assert report.rebuilt == (("volatile", 1),)
        assert report.removed_pool_files == 1
        assert os.readlink(arch_dir / "current") == "1"
        assert not any(layout.tmp.iterdir())
        assert [p.name for p in layout.parts.iterdir()] == [f"{part.sha256}.json"]
        verified = cairn(tmp_path, "channel", "verify", str(layout.root), "--arch", "x86_64")
        assert verified.returncode == 0


def _symlink(directory: Path, target: str) -> Path:
    link = directory / ".current-test"
    os.symlink(target, link)
    return link


async def test_http_serves_with_range_etag_and_refuses_traversal(tmp_path: Path) -> None:
    from aiohttp import ClientSession

    from daemon.vessel.http import make_app

    async with environment(tmp_path) as env:
        await import_pkgs(env, hello())
        runner = web.AppRunner(make_app(env.config.layout.root))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        base = f"http://127.0.0.1:{port}"
        try:
            async with ClientSession() as http:
                async with http.get(f"{base}/volatile/x86_64/current/index.json") as r:
                    assert r.status == 200
                    body = await r.read()
                    etag = r.headers["ETag"]
                    assert r.headers["Cache-Control"] == "no-cache"
                    assert r.headers["Content-Type"].startswith("application/json")
                on_disk = (env.config.layout.current("volatile", "x86_64") / "index.json")
                assert body == on_disk.read_bytes()
                async with http.get(f"{base}/volatile/x86_64/current/index.json",
                                    headers={"If-None-Match": etag}) as r:
                    assert r.status == 304
                uri = env.current_index().packages[0].uri.removeprefix("../../../")
                whole = (env.config.layout.root / uri).read_bytes()
                async with http.get(f"{base}/{uri}", headers={"Range": "bytes=10-29"}) as r:
                    assert r.status == 206
                    assert await r.read() == whole[10:30]
                    assert r.headers["Content-Range"] == f"bytes 10-29/{len(whole)}"
                    assert "immutable" in r.headers["Cache-Control"]
                for evil in ("/../minisign.key", "/pool/..%2F..%2Fminisign.key",
                             "/%2e%2e/vessel.sqlite", "/volatile/x86_64/.tmp-1/index.json",
                             "/volatile", "/"):
                    async with http.get(base + evil) as r:
                        assert r.status == 404, evil
            # The server runs in this event loop: run the client without blocking it.
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "daemon.cli", "channel", "verify", base, "--arch", "x86_64",
                "--allow-not-hermetic", "--seen-file", str(tmp_path / "seen.json"),
                cwd=REPO_ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await proc.communicate()
            assert proc.returncode == 0, err.decode()
            assert "2 packages match" in out.decode()
        finally:
            await runner.cleanup()
