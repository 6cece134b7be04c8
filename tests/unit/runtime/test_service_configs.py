"""The daemons' own sections refuse what would become a path, a queue word or a busy loop,
naming the file, the key and the value (an arch ``x86_64/../../x`` once created queues and
killed summit's watcher silently; a negative poll interval busy-looped)."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.avalanche.daemon import (
    SHARED_DIR,
    AvalancheDaemonConfig,
    AvalancheSection,
    core_config,
)
from daemon.runtime.config import ConfigKeyError, StateSection, load_config
from daemon.summit.daemon import SummitDaemonConfig
from daemon.vessel.daemon import VesselDaemonConfig
from events.errors import ConfigError

REPO = '[[summit.repositories]]\nname = "{name}"\nurl = "/srv/recipes"\nbranch = "{branch}"\n' \
       'arches = ["{arch}"]\n'


def _summit(tmp_path: Path, text: str) -> SummitDaemonConfig:
    path = tmp_path / "summit.toml"
    path.write_text(text)
    return load_config(path, SummitDaemonConfig, env={})


def _repo(name: str = "recipes", branch: str = "main", arch: str = "x86_64") -> str:
    return REPO.format(name=name, branch=branch, arch=arch)


def test_good_repositories_load(tmp_path: Path) -> None:
    config = _summit(tmp_path, _repo(branch="release/2024.1", arch="aarch64"))
    (repo,) = config.summit.repositories
    assert (repo.name, repo.branch, repo.arches) == ("recipes", "release/2024.1", ["aarch64"])


@pytest.mark.parametrize(("fields", "key", "value"), [
    ({"arch": "x86_64/../../x"}, "summit.repositories[0].arches[0]", "x86_64/../../x"),
    ({"arch": "x86.64"}, "summit.repositories[0].arches[0]", "x86.64"),
    ({"name": "../etc"}, "summit.repositories[0].name", "../etc"),
    ({"name": "a b"}, "summit.repositories[0].name", "a b"),
    ({"branch": "../../x"}, "summit.repositories[0].branch", "../../x"),
    ({"branch": "-x"}, "summit.repositories[0].branch", "-x"),
    ({"branch": "main.lock"}, "summit.repositories[0].branch", "main.lock"),
])
def test_names_that_are_paths_are_refused(tmp_path: Path, fields: dict[str, str], key: str,
                                          value: str) -> None:
    with pytest.raises(ConfigKeyError) as caught:
        _summit(tmp_path, _repo(**fields))
    assert caught.value.key == key
    assert caught.value.got == f"str {value!r}"
    assert "regex" not in str(caught.value) and "summit.toml" in str(caught.value)


@pytest.mark.parametrize(("text", "key"), [
    ("[summit]\nlisten_port = 70000\n", "summit.listen_port"),
    ("[summit]\nlisten_port = -1\n", "summit.listen_port"),
    ("[summit]\npoll_interval = -1\n", "summit.poll_interval"),
    ("[summit]\npoll_interval = 0\n", "summit.poll_interval"),
    ("[summit]\nclaim_timeout = 0\n", "summit.claim_timeout"),
    ("[summit]\nmax_attempts = 0\n", "summit.max_attempts"),
    ("[summit]\nchannel = \"../stable\"\n", "summit.channel"),
])
def test_summit_numbers_out_of_range_are_refused(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigKeyError) as caught:
        _summit(tmp_path, text)
    assert caught.value.key == key


def test_builder_arch_and_ports_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "a.toml"
    path.write_text('[avalanche]\narch = "x86_64/../../x"\n')
    with pytest.raises(ConfigKeyError, match=r"avalanche\.arch"):
        load_config(path, AvalancheDaemonConfig, env={})
    path.write_text("[avalanche]\nlisten_port = 65536\n")
    with pytest.raises(ConfigKeyError, match=r"avalanche\.listen_port"):
        load_config(path, AvalancheDaemonConfig, env={})
    path.write_text("[vessel]\nlisten_port = 99999\n")
    with pytest.raises(ConfigKeyError, match=r"vessel\.listen_port"):
        load_config(path, VesselDaemonConfig, env={})


def test_a_config_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "summit.toml"
    path.write_bytes(b'[summit]\nadmin_token = "\xff\xfe"\n')
    with pytest.raises(ConfigError, match=r"summit\.toml: not UTF-8 text \(byte 24"):
        load_config(path, SummitDaemonConfig, env={})


def test_builders_of_one_state_directory_share_their_recipe_mirrors(tmp_path: Path) -> None:
    """Each builder keeps its own root, but the recipe mirrors are one per state directory
    (a commit fetched once per host), and hidden from builds like everything under it."""
    cores = [core_config(AvalancheDaemonConfig(
        state=StateSection(dir=str(tmp_path / "state")),
        avalanche=AvalancheSection(builder=name))) for name in ("one", "two")]
    assert cores[0].root != cores[1].root
    assert cores[0].mirror_root == cores[1].mirror_root != cores[0].cache_dir
    assert cores[0].mirror_root.name == SHARED_DIR
    assert all(any(h in c.mirror_root.parents for h in c.hidden) for c in cores)
    other = core_config(AvalancheDaemonConfig(state=StateSection(dir=str(tmp_path / "other")),
                                              avalanche=AvalancheSection(builder="one")))
    assert other.mirror_root != cores[0].mirror_root
