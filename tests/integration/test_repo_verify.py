"""``cairn repo verify`` as a user runs it: key trust, rollback and replay detection, and
the provenance of every package (the build environment it names must be listed).

Regressions: without ``--key`` it trusted the repository's own key silently; a ``current``
pointing back at an older (validly signed) generation, or at another channel's index, passed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.repo.seen import SeenGenerations, repository_id
from daemon.vessel import channels, minisign
from daemon.vessel.environments import EnvironmentStore
from tests.integration.vessel_env import Env, environment, import_pkgs
from tests.unit.buildenv.support import make_tree, pack_tree
from tests.unit.vessel.builders import Pkg

REPO_ROOT = Path(__file__).resolve().parents[2]


def verify(env: Env, seen: Path, *args: str, channel: str = "volatile",
           hermetic: bool = False) -> subprocess.CompletedProcess[str]:
    """``channel verify`` of ``env``'s repository; packages built on the host (most of these
    tests') are accepted unless ``hermetic``."""
    also = () if hermetic else ("--allow-not-hermetic",)
    return subprocess.run(
        [sys.executable, "-m", "daemon.cli", "channel", "verify", str(env.config.layout.root),
         "--channel", channel, "--arch", "x86_64", "--seen-file", str(seen), *also, *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)


def point_current(env: Env, target: str, channel: str = "volatile") -> None:
    """Play whoever serves the repository: ``current`` names what they choose."""
    arch_dir = env.config.layout.arch_dir(channel, "x86_64")
    temporary = arch_dir / ".current-test"
    os.symlink(target, temporary)
    os.replace(temporary, arch_dir / "current")


async def publish_releases(env: Env, count: int) -> None:
    for release in range(1, count + 1):
        pkg = Pkg(name="hello", release=release, files={"usr/share/hello": b"v%d" % release})
        outcome = await import_pkgs(env, [pkg], release=release, task_id=release)
        assert outcome.published is not None


async def test_without_a_key_it_warns_and_with_require_key_it_fails(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        await publish_releases(env, 1)
        seen = tmp_path / "seen.json"
        trusting = verify(env, seen)
        assert trusting.returncode == 0, trusting.stderr
        assert "warning: no --key given: trusted the key the repository serves" in \
            trusting.stderr
        strict = verify(env, seen, "--require-key")
        assert strict.returncode == 2
        assert "--require-key: give the minisign public key you trust with --key" in \
            strict.stderr
        keyed = verify(env, seen, "--require-key", "--key", str(env.config.layout.public_key))
        assert keyed.returncode == 0, keyed.stderr
        assert "warning: no --key" not in keyed.stderr


async def test_an_older_generation_than_one_seen_is_refused(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        await publish_releases(env, 3)
        seen = tmp_path / "seen.json"
        key = ("--key", str(env.config.layout.public_key))
        first = verify(env, seen, *key)
        assert first.returncode == 0, first.stderr
        assert "generation 3:" in first.stdout

        point_current(env, "1")  # an old index, validly signed, replayed
        replayed = verify(env, seen, *key)
        assert replayed.returncode == 1
        assert ("generation 1 is older than generation 3, which this client already "
                "verified") in replayed.stderr
        assert "--allow-rollback" in replayed.stderr
        assert verify(env, seen, *key).returncode == 1  # the record is not lowered

        reset = verify(env, seen, *key, "--allow-rollback")
        assert reset.returncode == 0, reset.stderr
        assert "generation 1 (highest seen before: 3)" in reset.stdout
        assert verify(env, seen, *key).returncode == 0  # 1 is now the record

        point_current(env, "3")
        assert verify(env, seen, *key).returncode == 0
        point_current(env, "2")
        assert verify(env, seen, *key).returncode == 1


async def test_an_operator_rollback_is_a_newer_generation(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        await publish_releases(env, 3)
        seen = tmp_path / "seen.json"
        assert verify(env, seen).returncode == 0
        back = await channels.rollback(env.repo, env.db, "volatile", 1)
        assert back.generation == 4
        after = verify(env, seen)
        assert after.returncode == 0, after.stderr
        assert "generation 4 (highest seen before: 3)" in after.stdout
        assert {p.release for p in env.current_index().packages} == {1}


async def test_another_channels_index_is_refused(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        await publish_releases(env, 1)
        await channels.promote(env.repo, env.db, "volatile", "stable")
        point_current(env, "../../volatile/x86_64/1", channel="stable")
        swapped = verify(env, tmp_path / "seen.json", channel="stable")
        assert swapped.returncode == 1
        assert ("the signed index is for volatile/x86_64, not stable/x86_64"
                in swapped.stderr)


async def test_a_damaged_state_file_is_an_error_not_a_reset(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        await publish_releases(env, 1)
        seen = tmp_path / "seen.json"
        seen.write_text("{not json")
        broken = verify(env, seen)
        assert broken.returncode == 2
        assert f"{seen} is not a generation record" in broken.stderr
        assert seen.read_text() == "{not json"


def test_records_are_kept_per_signing_key(tmp_path: Path) -> None:
    # An index signed with another key (served with its own minisign.pub) and a huge
    # generation number must not raise the bar for the repository's real key.
    seen = SeenGenerations(tmp_path / "seen.json")
    seen.record("http://repo", "volatile", "x86_64", "REALKEY", 12)
    seen.record("http://repo", "volatile", "x86_64", "OTHERKEY", 10**9)
    seen.record("http://repo", "volatile", "x86_64", "REALKEY", 7)  # lower: ignored
    assert seen.highest("http://repo", "volatile", "x86_64", "REALKEY") == 12
    assert seen.highest("http://repo", "stable", "x86_64", "REALKEY") is None
    seen.record("http://repo", "volatile", "x86_64", "REALKEY", 7, replace=True)
    assert seen.highest("http://repo", "volatile", "x86_64", "REALKEY") == 7
    assert seen.highest("http://repo", "volatile", "x86_64", "OTHERKEY") == 10**9


@pytest.mark.parametrize("location", ["http://mirror.example/repo/", "http://mirror.example/repo"])
def test_a_url_has_one_spelling(location: str) -> None:
    assert repository_id(location) == "http://mirror.example/repo"


async def test_every_package_names_an_environment_the_repository_lists(tmp_path: Path) -> None:
    record, archive = pack_tree(make_tree(tmp_path / "tree"), tmp_path / "env")
    async with environment(tmp_path) as env:
        key = minisign.load_or_create_key(env.config.layout.secret_key)
        EnvironmentStore(env.config.layout, key).push(archive)
        seen = tmp_path / "seen.json"

        async def publish(name: str, built_in: str | None, task_id: int) -> None:
            pkg = Pkg(name=name, files={f"usr/share/{name}": b"x"}, environment=built_in)
            assert (await import_pkgs(env, [pkg], task_id=task_id)).published is not None

        await publish("built", record.digest, 1)
        ok = verify(env, seen, hermetic=True)
        assert ok.returncode == 0, ok.stderr
        await publish("hosted", None, 2)
        host = verify(env, seen, hermetic=True)
        assert host.returncode == 1
        assert ("hosted: not hermetic: built on a builder host's own system, in no build "
                "environment") in host.stderr
        assert "built:" not in host.stderr
        allowed = verify(env, seen)
        assert allowed.returncode == 0, allowed.stderr
        assert "1 package(s) are not hermetic (built on a builder host's own system): hosted" \
            in allowed.stderr
        stray = "ab" * 32
        await publish("stray", stray, 3)
        unknown = verify(env, seen)
        assert unknown.returncode == 1
        assert (f"stray: built in environment sha256:{stray}, which the repository's "
                "environments/index.json does not list") in unknown.stderr
