"""Configuration: typed sections, service sections, env overrides, errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.runtime.config import (
    BaseConfig,
    ConfigKeyError,
    LogFormat,
    LogLevel,
    Section,
    load_config,
)
from events.errors import ConfigError


class DemoSection(Section, frozen=True):
    poll_interval: float = 60.0
    arches: tuple[str, ...] = ("x86_64",)
    webhook_secret: str | None = None


class DemoConfig(BaseConfig, frozen=True):
    demo: DemoSection = DemoSection()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cairn.toml"
    path.write_text(text)
    return path


def test_defaults_without_file() -> None:
    config = load_config(None, env={})
    assert config.bus.url == "memory://"
    assert config.log.level is LogLevel.INFO
    assert config.log.format is LogFormat.AUTO
    assert config.health.enabled is False


def test_file_values_and_service_section(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[bus]
url = "amqp://guest:guest@127.0.0.1/"
[log]
level = "debug"
format = "json"
[health]
port = 9000
[state]
dir = "/srv/cairn"
[demo]
poll_interval = 5
arches = ["x86_64", "aarch64"]
""",
    )
    config = load_config(path, DemoConfig, env={})
    assert isinstance(config, DemoConfig)
    assert config.bus.url == "amqp://guest:guest@127.0.0.1/"
    assert config.log.level is LogLevel.DEBUG and config.log.format is LogFormat.JSON
    assert config.health.port == 9000
    assert config.state.path("summit.db") == Path("/srv/cairn/summit.db")
    assert config.demo.poll_interval == 5.0
    assert config.demo.arches == ("x86_64", "aarch64")
    assert config.mqtt.url == "mqtt://127.0.0.1:1883"  # untouched sections keep defaults


def test_env_overrides_parse_to_the_key_type(tmp_path: Path) -> None:
    path = write(tmp_path, '[bus]\nurl = "amqp://file/"\n')
    env = {
        "CAIRN_BUS_URL": "amqp://env/",
        "CAIRN_HEALTH_PORT": "8123",
        "CAIRN_HEALTH_ENABLED": "true",
        "CAIRN_LOG_LEVEL": "warning",
        "CAIRN_DEMO_POLL_INTERVAL": "2.5",
        "CAIRN_DEMO_ARCHES": '["riscv64"]',
        "CAIRN_DEMO_WEBHOOK_SECRET": "s3cret",
        "CAIRN_TEST_SOMETHING": "ignored: no such section",
        "PATH": "/usr/bin",
    }
    config = load_config(path, DemoConfig, env=env)
    assert config.bus.url == "amqp://env/"
    assert config.health.port == 8123 and config.health.enabled is True
    assert config.log.level is LogLevel.WARNING
    assert config.demo.poll_interval == 2.5
    assert config.demo.arches == ("riscv64",)
    assert config.demo.webhook_secret == "s3cret"


def test_config_path_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, '[mqtt]\nurl = "mqtt://broker:1883"\n')
    config = load_config(None, env={"CAIRN_CONFIG": str(path)})
    assert config.mqtt.url == "mqtt://broker:1883"


def test_unknown_key_is_refused_with_its_name(tmp_path: Path) -> None:
    path = write(tmp_path, '[bus]\nulr = "amqp://x/"\n')
    with pytest.raises(ConfigKeyError) as info:
        load_config(path, env={})
    message = str(info.value)
    assert str(path) in message
    assert "bus.ulr: unknown key" in message
    assert "url" in message and "publish_timeout" in message
    assert info.value.key == "bus.ulr"


def test_unknown_section_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigKeyError, match=r"summitt: unknown key .*top level"):
        load_config(write(tmp_path, "[summitt]\nx = 1\n"), env={})


def test_wrong_type_names_expected_and_got(tmp_path: Path) -> None:
    path = write(tmp_path, '[health]\nport = "eighty"\n')
    with pytest.raises(ConfigKeyError) as info:
        load_config(path, env={})
    assert str(info.value) == f"{path}: health.port: expected int, got str 'eighty'"
    assert (info.value.expected, info.value.got) == ("int", "str 'eighty'")


def test_out_of_range_and_bad_enum(tmp_path: Path) -> None:
    with pytest.raises(ConfigKeyError, match=r"health\.port: expected int <= 65535, got int 70000"):
        load_config(write(tmp_path, "[health]\nport = 70000\n"), env={})
    with pytest.raises(
        ConfigKeyError, match=r"log\.level: expected one of debug, info, warning, error"
    ):
        load_config(write(tmp_path, '[log]\nlevel = "loud"\n'), env={})


def test_section_that_is_not_a_table(tmp_path: Path) -> None:
    with pytest.raises(ConfigKeyError, match=r"bus: expected object, got str 'amqp://x/'"):
        load_config(write(tmp_path, 'bus = "amqp://x/"\n'), env={})


def test_bad_env_value_names_the_variable() -> None:
    with pytest.raises(ConfigKeyError) as info:
        load_config(None, env={"CAIRN_HEALTH_PORT": "http"})
    assert str(info.value) == (
        "environment variable CAIRN_HEALTH_PORT: health.port: expected int, got 'http'"
    )


def test_unknown_env_key_is_refused() -> None:
    with pytest.raises(
        ConfigKeyError, match=r"CAIRN_BUS_ULR: bus\.ulr: unknown key .*CAIRN_BUS_URL"
    ):
        load_config(None, env={"CAIRN_BUS_ULR": "amqp://x/"})


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_config(tmp_path / "absent.toml", env={})
    with pytest.raises(ConfigError, match=r"not valid TOML: .*line 1"):
        load_config(write(tmp_path, "[bus\n"), env={})


def test_sections_are_frozen() -> None:
    config = load_config(None, env={})
    with pytest.raises(AttributeError):
        config.bus.url = "x"  # type: ignore[misc]
