"""Service configuration: one TOML file, environment overrides, typed frozen sections.

Why strict: a typo in a config key (``[bus] ulr``) silently falling back to a default is the
kind of mistake that costs an evening, so unknown keys and wrong types are refused with the
file, the key, what was expected and what was found.

Every service shares the sections of :class:`BaseConfig` and declares its own by
subclassing it::

    class SummitSection(Section, frozen=True):
        poll_interval: float = 60.0

    class SummitConfig(BaseConfig, frozen=True):
        summit: SummitSection = SummitSection()

    config = load_config(path, SummitConfig)

(``frozen=True`` is repeated on subclasses for the type checker; msgspec inherits it.)

Any key of any section can be overridden from the environment as
``CAIRN_<SECTION>_<KEY>`` (``CAIRN_BUS_URL``, ``CAIRN_SUMMIT_POLL_INTERVAL``), which is how
systemd units and containers adjust one value without templating a file. Values are parsed
to the key's type (``8080``, ``true``, JSON for lists).
"""

from __future__ import annotations

import os
import re
import tomllib
import typing
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar, overload

import msgspec

from events.errors import ConfigError
from events.payloads import ARCH_PATTERN, NAME_PATTERN

ENV_PREFIX = "CAIRN_"
#: Names the config file when no path is given.
CONFIG_ENV = "CAIRN_CONFIG"

Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
Seconds = Annotated[float, msgspec.Meta(gt=0)]
#: A git branch name as ``git check-ref-format --branch`` allows it, in the characters
#: cairn uses: no ``..``, ``//``, leading ``-`` or ``/``, trailing ``/``, ``.`` or ``.lock``.
BRANCH_PATTERN = r"^(?!.*\.\.)(?!.*//)(?!.*\.lock$)[A-Za-z0-9_][A-Za-z0-9_.+/-]*(?<![./])$"
Branch = Annotated[str, msgspec.Meta(pattern=BRANCH_PATTERN, max_length=255)]


class ConfigKeyError(ConfigError):
    """One key of the configuration is wrong; says where, what was expected and what was got."""

    def __init__(
        self, source: str, key: str, problem: str, expected: str = "", got: str = ""
    ) -> None:
        detail = f"expected {expected}, got {got}" if expected else problem
        super().__init__(f"{source}: {key}: {detail}")
        self.source = source
        self.key = key
        self.expected = expected
        self.got = got


class Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every config section: immutable, unknown keys refused."""


class BusSection(Section, frozen=True):
    #: ``memory://`` for the embedded broker, ``amqp://user:pass@host/vhost`` for RabbitMQ;
    #: the nodes of a cluster as a list (or, in ``CAIRN_BUS_URL``, comma-separated): the
    #: client connects to the first that answers and moves on when its node dies.
    url: str | list[str] = "memory://"
    publish_timeout: Seconds = 10.0


class MqttSection(Section, frozen=True):
    url: str = "mqtt://127.0.0.1:1883"


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class LogFormat(StrEnum):
    #: JSON lines when stderr is not a terminal (journald, files), colours when it is.
    AUTO = "auto"
    JSON = "json"
    CONSOLE = "console"


class LogSection(Section, frozen=True):
    level: LogLevel = LogLevel.INFO
    format: LogFormat = LogFormat.AUTO


class HealthSection(Section, frozen=True):
    #: Run a standalone health server; a service with its own web app mounts it there.
    enabled: bool = False
    host: str = "127.0.0.1"
    port: Port = 8089


class StateSection(Section, frozen=True):
    #: Where the service keeps its SQLite database and files (systemd's StateDirectory).
    dir: str = "/var/lib/cairn"

    def path(self, *parts: str) -> Path:
        return Path(self.dir, *parts)


class BaseConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The sections every service has. Subclass it to add a service's own sections."""

    bus: BusSection = BusSection()
    mqtt: MqttSection = MqttSection()
    log: LogSection = LogSection()
    health: HealthSection = HealthSection()
    state: StateSection = StateSection()


C = TypeVar("C", bound=BaseConfig)


@overload
def load_config(
    path: str | Path | None = None, *, env: Mapping[str, str] | None = None
) -> BaseConfig: ...


@overload
def load_config(
    path: str | Path | None, config_type: type[C], *, env: Mapping[str, str] | None = None
) -> C: ...


def load_config(
    path: str | Path | None = None,
    config_type: type[BaseConfig] = BaseConfig,
    *,
    env: Mapping[str, str] | None = None,
) -> BaseConfig:
    """Read ``path`` (or ``$CAIRN_CONFIG``, or nothing: defaults), then apply the environment.

    Raises :class:`ConfigKeyError` (a :class:`~events.errors.ConfigError`) naming the file
    or variable, the key, the expected type and what was found.
    """
    env = os.environ if env is None else env
    if path is None and env.get(CONFIG_ENV):
        path = env[CONFIG_ENV]
    raw: dict[str, Any] = _read_toml(Path(path)) if path is not None else {}
    source = str(path) if path is not None else "<defaults>"
    try:
        config = msgspec.convert(raw, config_type)
    except msgspec.ValidationError as exc:
        raise _explain(exc, raw, config_type, source) from None
    return _apply_env(config, env)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason}); TOML "
                          "files are UTF-8") from None


_AT = re.compile(r"^(?P<message>.*) - at `\$(?P<path>[^`]*)`$")
_TYPES = re.compile(r"^Expected `(?P<expected>[^`]+)`, got `(?P<got>[^`]+)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<field>[^`]+)`$")
#: One step of msgspec's path: a key, or a list index (``repositories[0]``).
_KEY = re.compile(r"[^.\[\]]+|\[\d+\]")
_REGEX = re.compile(r"^Expected `str` matching regex '(?P<regex>.*)'$")
#: The patterns of names, in words (the regex alone is what a person cannot read).
_PATTERN_WORDS = {
    NAME_PATTERN: "a name: letters, digits and _.+- (not first: . or -)",
    ARCH_PATTERN: "an arch: letters, digits and _",
    BRANCH_PATTERN: "a git branch name (no '..', '//', leading '-' or '/', trailing '/', "
                    "'.' or '.lock')",
}


def _explain(
    exc: msgspec.ValidationError, raw: Mapping[str, Any], config_type: type[Any], source: str
) -> ConfigKeyError:
    """Turn msgspec's message into: file, dotted key, expected, got (with the value)."""
    text = str(exc)
    match = _AT.match(text)
    message, path = (match["message"], match["path"]) if match else (text, "")
    keys = _KEY.findall(path)
    unknown = _UNKNOWN.match(message)
    if unknown:
        known = ", ".join(f.name for f in msgspec.structs.fields(_type_at(config_type, keys)))
        key = ".".join([*keys, unknown["field"]])
        where = f"[{'.'.join(keys)}]" if keys else "the top level"
        return ConfigKeyError(source, key, f"unknown key (known keys in {where}: {known})")
    key = ".".join(keys).replace(".[", "[") or "<top level>"
    value = _value_at(raw, keys)
    expected = _expected(message, _type_at(config_type, keys) if keys else config_type)
    return ConfigKeyError(source, key, message, expected, f"{type(value).__name__} {value!r}")


def _expected(message: str, field_type: Any) -> str:
    """What a key should hold, in words: ``int``, ``one of debug, info``, ``int <= 65535``."""
    if isinstance(field_type, type) and issubclass(field_type, StrEnum):
        return "one of " + ", ".join(m.value for m in field_type)
    types = _TYPES.match(message)
    if types:
        return types["expected"]
    regex = _REGEX.match(message)
    if regex:  # msgspec shows the pattern as a repr: backslashes doubled
        pattern = regex["regex"].replace("\\\\", "\\")
        return _PATTERN_WORDS.get(pattern, f"text matching {pattern}")
    return message.removeprefix("Expected ").replace("`", "")


def _type_at(config_type: Any, keys: list[str]) -> Any:
    """The declared type of a dotted key (``Any`` when it is not inside structs)."""
    current = config_type
    for key in keys:
        if key.startswith("["):
            args = [a for a in typing.get_args(current) if a is not type(None)]
            current = args[0] if len(args) == 1 else Any
            continue
        if not (isinstance(current, type) and issubclass(current, msgspec.Struct)):
            return Any
        fields = {f.name: f.type for f in msgspec.structs.fields(current)}
        current = fields.get(key, Any)
    return current


def _value_at(raw: Mapping[str, Any], keys: list[str]) -> Any:
    value: Any = raw
    for key in keys:
        if key.startswith("["):
            index = int(key[1:-1])
            value = value[index] if isinstance(value, list) and index < len(value) else None
        else:
            value = value.get(key) if isinstance(value, Mapping) else None
    return value


def _sections(config_type: type[Any]) -> dict[str, type[msgspec.Struct]]:
    """The struct-typed sections of a config type, by name."""
    return {
        f.name: f.type
        for f in msgspec.structs.fields(config_type)
        if isinstance(f.type, type) and issubclass(f.type, msgspec.Struct)
    }


def _apply_env(config: C, env: Mapping[str, str]) -> C:
    """Override keys from ``CAIRN_<SECTION>_<KEY>`` variables, parsed to the key's type."""
    sections = _sections(type(config))
    # Longest section name first, so CAIRN_STATE_X never matches a section "sta".
    prefixes = sorted(sections, key=len, reverse=True)
    changes: dict[str, dict[str, Any]] = {}
    for name, raw in sorted(env.items()):
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV:
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        section = next((s for s in prefixes if rest.startswith(f"{s}_")), None)
        if section is None:
            continue  # not a config variable (CAIRN_TEST_..., a tool's own variable)
        key = rest[len(section) + 1 :]
        fields = {f.name: f.type for f in msgspec.structs.fields(sections[section])}
        if key not in fields:
            known = ", ".join(f"{ENV_PREFIX}{section.upper()}_{k.upper()}" for k in fields)
            raise ConfigKeyError(
                f"environment variable {name}",
                f"{section}.{key}",
                f"unknown key (known: {known})",
            )
        changes.setdefault(section, {})[key] = _parse_env(name, section, key, raw, fields[key])
    for section, values in changes.items():
        updated = msgspec.structs.replace(getattr(config, section), **values)
        config = msgspec.structs.replace(config, **{section: updated})
    return config


def _parse_env(name: str, section: str, key: str, raw: str, field_type: Any) -> Any:
    try:
        return msgspec.convert(raw, field_type, strict=False)
    except msgspec.ValidationError as first:
        try:
            return msgspec.json.decode(raw, type=field_type)
        except (msgspec.ValidationError, msgspec.DecodeError):
            pass
        message = _AT.sub(r"\g<message>", str(first))
        raise ConfigKeyError(
            f"environment variable {name}",
            f"{section}.{key}",
            message,
            _expected(message, field_type),
            repr(raw),
        ) from None
