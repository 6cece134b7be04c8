"""A layer-only environment (the self-hosted case): packages built by avalanche, published in
a signed index served over real HTTP, built into an environment, pushed to vessel, pulled by
digest into a builder's cache."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from daemon.avalanche.build import run_build
from daemon.buildenv import declaration
from daemon.buildenv.build import build
from daemon.buildenv.cache import EnvironmentCache
from daemon.buildenv.errors import BuildEnvError
from daemon.buildenv.manifest import Origin as PackageOrigin
from daemon.buildenv.remote import Origin
from daemon.vessel import minisign
from daemon.vessel.config import VesselConfig
from daemon.vessel.environments import EnvironmentStore
from events.payloads import Outcome
from tests.unit.avalanche.support import config, make_repo, serve_dir, task_for, write_index


@pytest.fixture
def channel(tmp_path: Path) -> tuple[Path, minisign.SecretKey]:
    repo, commit = make_repo(tmp_path / "recipes")
    result = run_build(task_for(repo, commit, "libgreet"), config(tmp_path / "builder"))
    assert result.outcome is Outcome.SUCCESS, result.reason
    served = tmp_path / "served"
    index = write_index(served, [result])
    key = minisign.SecretKey.generate()
    (served / "index.json.minisig").write_text(
        minisign.sign(key, index.read_bytes(), trusted_comment="test"))
    (tmp_path / "vessel.pub").write_text(key.public.to_file_text())
    return served, key


async def test_layer_environment_is_built_pushed_and_pulled(
        tmp_path: Path, channel: tuple[Path, minisign.SecretKey]) -> None:
    served, _key = channel
    async with serve_dir(served) as url:
        decl_path = tmp_path / "layer.toml"
        decl_path.write_text(f'name = "greet-layer"\n[layer]\nindex = "{url}/index.json"\n'
                             'packages = ["pkgconfig(libgreet)"]\nkey = "vessel.pub"\n')
        decl = declaration.load(decl_path)
        built = await asyncio.to_thread(build, decl, tmp_path / "out",
                                        cache_dir=tmp_path / "dl")
    m = built.record.manifest
    assert [(p.name, p.origin) for p in m.packages] == [
        ("libgreet", PackageOrigin.CAIRN), ("libgreet-devel", PackageOrigin.CAIRN)]
    assert {"pkgconfig(libgreet)", "soname(libgreet.so.1(x86_64))", "name(libgreet-devel)"
            } <= set(m.provides)
    assert m.base is None and m.layer is not None and m.layer.channel == "volatile"

    layout = VesselConfig(state_dir=tmp_path / "vessel").layout
    layout.root.mkdir(parents=True)
    vessel_key = minisign.load_or_create_key(layout.secret_key)
    EnvironmentStore(layout, vessel_key).push(built.archive)
    cache = EnvironmentCache(tmp_path / "cache")

    def pull(base_url: str) -> str:
        with cache.use(built.record.digest, Origin(base_url, vessel_key.public)) as env:
            return (env.root / "usr/lib/pkgconfig/libgreet.pc").read_text()

    async with serve_dir(layout.root) as vessel_url:
        assert "Name: libgreet" in await asyncio.to_thread(pull, vessel_url)


async def test_an_index_that_does_not_verify_is_refused(
        tmp_path: Path, channel: tuple[Path, minisign.SecretKey]) -> None:
    served, _key = channel
    (tmp_path / "other.pub").write_text(minisign.SecretKey.generate().public.to_file_text())
    async with serve_dir(served) as url:
        decl_path = tmp_path / "layer.toml"
        decl_path.write_text(f'name = "x"\n[layer]\nindex = "{url}/index.json"\n'
                             'packages = ["libgreet"]\nkey = "other.pub"\n')
        with pytest.raises(BuildEnvError, match="does not verify"):
            await asyncio.to_thread(build, declaration.load(decl_path), tmp_path / "out",
                                    cache_dir=tmp_path / "dl")
    assert [p.name for p in (tmp_path / "out").iterdir()] == []
