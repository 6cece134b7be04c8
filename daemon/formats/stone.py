"""``stone.yaml``, the recipe format of boulder (Serpent OS / AerynOS), read once for everyone.

Summit plans from it, a builder builds from it, ``cairn build-recipe --dry-run`` shows it: all
through :func:`parse_stone`, so they can never disagree about what a recipe says. The keys and
what they mean are boulder's:

==================  ==================================================================
identity            ``name``, ``version`` (text as written: ``1.10`` stays ``1.10``),
                    ``release`` (a whole number from 1 to :data:`MAX_RELEASE`)
metadata            ``summary``, ``description``, ``homepage``, ``license`` (one or a list)
dependencies        ``builddeps``, ``checkdeps``, ``rundeps``
steps               ``setup``, ``build``, ``install``, ``check``, ``workload``, with
                    ``environment`` run before each
upstreams           ``URL : sha256`` or ``URL: {hash, rename, stripdirs, unpack,
                    unpackdir}``; ``git|URL : commit`` or ``git|URL: {ref, clonedir,
                    staging}`` (:mod:`.upstreams`)
packages            sub-packages ``- name: {summary, description, rundeps, paths,
                    conflicts}``; the top level's ``summary``... and ``paths`` are the
                    main package's
tuning              ``- group``, ``- group: false`` or ``- group: option`` (:mod:`.macros`)
profiles            ``- <target>: {setup, build, install, check, workload, environment}``
                    replacing the top-level steps for that build target (``emul32``,
                    ``x86_64``, ``emul32/x86_64``)
options             ``toolchain`` (``llvm``, the default, or ``gnu``), ``emul32``, ``mold``,
                    ``networking``, ``strip`` (default yes), ``compressman``, ``cspgo``,
                    ``samplepgo``, ``architectures``
==================  ==================================================================

A key outside this list is kept in :attr:`Recipe.unknown` (boulder ignores such keys; a build
names them in its log). Yes/no values accept YAML's spellings (``yes``, ``True``, ``on``...).

Every name is checked by :func:`daemon.package.check_name` and the version by
:func:`~daemon.package.check_version` here, when the recipe is read. The text is capped at
:data:`MAX_RECIPE_BYTES` and must be UTF-8; the YAML is read by :mod:`.yamltext` (no aliases,
bounded). Any problem raises :class:`RecipeError` with the file and line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from daemon.package import InvalidName, check_name, check_version
from events.errors import CairnError

from . import yamltext
from .upstreams import GitUpstream, PlainUpstream, Upstream, parse_upstreams
from .values import Invalid as _Invalid
from .values import flag, is_flag, shown, strings
from .values import shape as _shape
from .values import text as _text

STONE_FILE = "stone.yaml"
#: The largest ``stone.yaml`` read (the largest real recipe is under 20 KB).
MAX_RECIPE_BYTES = 256 * 1024
#: The highest ``release``: a whole number every store and event carries without overflow.
MAX_RELEASE = 2**31 - 1
#: The build steps, in the order boulder runs them (``workload`` only in profile-guided builds).
STEPS = ("setup", "build", "install", "check", "workload")

__all__ = ["GitUpstream", "PlainUpstream", "Upstream"]


class RecipeError(CairnError):
    """A recipe (or a file beside it) that cannot be used, with where to look."""

    def __init__(self, file: str, line: int, message: str) -> None:
        super().__init__(f"{file}:{line}: {message}")
        self.file = file
        self.line = line
        self.message = message


class Toolchain(StrEnum):
    LLVM = "llvm"
    GNU = "gnu"


class PathKind(StrEnum):
    """What a package ``paths`` entry matches: anything, or only files of one kind."""

    ANY = "any"
    EXE = "exe"
    SYMLINK = "symlink"
    SPECIAL = "special"


@dataclass(frozen=True, slots=True)
class PathRule:
    path: str
    kind: PathKind = PathKind.ANY


@dataclass(frozen=True, slots=True)
class Package:
    """A package the recipe declares (``name`` with ``%(name)`` expanded)."""

    name: str
    summary: str = ""
    description: str = ""
    rundeps: tuple[str, ...] = ()
    paths: tuple[PathRule, ...] = ()
    conflicts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Steps:
    """What a build target runs: the top level's, or a profile's (which replaces them)."""

    setup: str | None = None
    build: str | None = None
    install: str | None = None
    check: str | None = None
    workload: str | None = None
    environment: str | None = None

    def step(self, name: str) -> str | None:
        value: str | None = getattr(self, name)
        return value

    def present(self) -> tuple[str, ...]:
        return tuple(s for s in STEPS if self.step(s))


@dataclass(frozen=True, slots=True)
class Tuning:
    """One ``tuning`` entry: a group enabled (``True``), disabled (``False``) or set to an
    option (text)."""

    group: str
    value: bool | str = True


@dataclass(frozen=True, slots=True)
class Recipe:
    name: str
    version: str
    release: int
    summary: str = ""
    description: str = ""
    homepage: str = ""
    license: tuple[str, ...] = ()
    upstreams: tuple[Upstream, ...] = ()
    builddeps: tuple[str, ...] = ()
    checkdeps: tuple[str, ...] = ()
    rundeps: tuple[str, ...] = ()
    steps: Steps = field(default_factory=Steps)
    profiles: tuple[tuple[str, Steps], ...] = ()
    #: The main package's own rules (top-level ``paths``, ``conflicts``).
    paths: tuple[PathRule, ...] = ()
    conflicts: tuple[str, ...] = ()
    packages: tuple[Package, ...] = ()
    tuning: tuple[Tuning, ...] = ()
    architectures: tuple[str, ...] = ()
    toolchain: Toolchain = Toolchain.LLVM
    emul32: bool = False
    mold: bool = False
    networking: bool = False
    strip: bool = True
    compressman: bool = False
    cspgo: bool = False
    samplepgo: bool = False
    #: Top-level keys that are not part of the format, with their lines.
    unknown: tuple[tuple[str, int], ...] = ()
    #: The top-level keys the recipe writes (with a value), in its order: what a review of
    #: the keys (:mod:`.keys`) looks at, and how a default is told from a choice.
    keys: tuple[str, ...] = ()

    @property
    def build_deps(self) -> tuple[str, ...]:
        """Everything the build needs installed: ``builddeps`` then ``checkdeps``."""
        return self.builddeps + self.checkdeps

    def step(self, name: str) -> str | None:
        return self.steps.step(name)

    def builds_for(self, arch: str) -> bool:
        """Whether the recipe builds on ``arch`` (no ``architectures``: everywhere)."""
        if not self.architectures:
            return True
        return arch in self.architectures or "native" in self.architectures

    def profile(self, key: str) -> Steps | None:
        return next((steps for k, steps in self.profiles if k == key), None)


_KNOWN = frozenset({
    "name", "version", "release", "summary", "description", "homepage", "license",
    "upstreams", "builddeps", "checkdeps", "rundeps", *STEPS, "environment", "profiles",
    "packages", "paths", "conflicts", "tuning", "architectures", "toolchain", "emul32",
    "mold", "networking", "strip", "compressman", "cspgo", "samplepgo",
})


def decode_text(data: bytes, file: str, *, limit: int = MAX_RECIPE_BYTES) -> str:
    """The text of a recipe file: at most ``limit`` bytes of UTF-8, else :class:`RecipeError`."""
    if len(data) > limit:
        raise RecipeError(file, 1, f"the file is {len(data)} bytes; a recipe may have at most "
                                   f"{limit} bytes")  # fmt: skip
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise RecipeError(file, line, f"the recipe is not UTF-8 text (byte {exc.start}: "
                                      f"{exc.reason}); save it as UTF-8") from None  # fmt: skip


def parse_stone(data: bytes, file: str = STONE_FILE) -> Recipe:
    """Read one ``stone.yaml`` (shown as ``file`` in errors); raise :class:`RecipeError`."""
    text = decode_text(data, file)
    try:
        doc = yamltext.load(text)
    except yamltext.YamlError as exc:
        raise RecipeError(file, exc.line, exc.message) from None
    if not isinstance(doc.value, dict):
        raise RecipeError(file, 1, "a recipe must be a YAML mapping (name: ..., version: ...)")
    return _recipe(doc.value, doc, file)


def _recipe(raw: Mapping[str, Any], doc: yamltext.Document, file: str) -> Recipe:
    def fail(key: str | None, message: str) -> RecipeError:
        return RecipeError(file, doc.line_of(key), message)

    for key in ("name", "version", "release"):
        if raw.get(key) in (None, ""):
            raise fail(None if key not in raw else key, f"missing required field {key!r}")
    try:
        name = check_name(_text(raw["name"]), what="the recipe's name")
    except (InvalidName, _Invalid) as exc:
        raise fail("name", str(exc)) from None
    try:
        version = check_version(_text(raw["version"]), what="the recipe's version")
    except (InvalidName, _Invalid) as exc:
        raise fail("version", str(exc)) from None
    values: dict[str, Any] = {}
    for key, reader in _READERS.items():
        if raw.get(key) is None:
            continue
        try:
            values[key] = reader(raw[key], name)
        except (_Invalid, InvalidName) as exc:
            raise fail(key, f"{shown(key)}: {exc}") from None
    try:
        release = _release(raw["release"])
    except _Invalid as exc:
        raise fail("release", str(exc)) from None
    try:
        upstreams = parse_upstreams(raw.get("upstreams"))
    except ValueError as exc:
        raise fail("upstreams", f"'upstreams': {exc}") from None
    try:
        steps = _steps(raw)
    except _Invalid as exc:
        raise fail(exc.key, str(exc)) from None
    try:
        profiles = _profiles(raw.get("profiles"))
    except _Invalid as exc:
        raise fail("profiles", str(exc)) from None
    unknown = tuple((k, doc.line_of(k)) for k in raw if k not in _KNOWN)
    keys = tuple(k for k in raw if raw[k] is not None)
    return Recipe(name=name, version=version, release=release, upstreams=upstreams,
                  steps=steps, profiles=profiles, unknown=unknown, keys=keys, **values)


def _release(value: Any) -> int:
    text = value.strip() if isinstance(value, str) else value
    if not isinstance(text, str) or not text.isascii() or not text.isdigit():
        raise _Invalid(f"'release' must be a whole number from 1 to {MAX_RELEASE}, "
                       f"not {shown(value)}")  # fmt: skip
    if len(text) > 10 or not 1 <= int(text) <= MAX_RELEASE:
        raise _Invalid(f"'release' must be a whole number from 1 to {MAX_RELEASE}, "
                       f"not {text[:40]}")  # fmt: skip
    return int(text)


def _strings(value: Any, _name: str = "") -> tuple[str, ...]:
    return strings(value)


def _description(value: Any, _name: str = "") -> str:
    return _text(value)


def _plain(value: Any, _name: str = "") -> str:
    return _text(value).strip()


def _toolchain(value: Any, _name: str = "") -> Toolchain:
    try:
        return Toolchain(_text(value).strip())
    except ValueError:
        raise _Invalid(f"must be llvm or gnu, not {shown(value)}") from None


def _flag(value: Any, _name: str = "") -> bool:
    return flag(value)


def _path_rules(value: Any, _name: str = "") -> tuple[PathRule, ...]:
    if not isinstance(value, list):
        raise _Invalid(f"must be a list of paths, not a {_shape(value)}")
    rules = []
    for item in value:
        if isinstance(item, str):
            rules.append(PathRule(item))
        elif isinstance(item, dict) and len(item) == 1:
            ((path, kind),) = item.items()
            try:
                rules.append(PathRule(path, PathKind(_text(kind).strip())))
            except ValueError:
                raise _Invalid(f"path {shown(path)}: kind must be one of "
                               f"{', '.join(PathKind)}, not {shown(kind)}") from None  # fmt: skip
        else:
            raise _Invalid(f"entry {shown(item)} is neither a path nor 'path: kind'")
    return tuple(rules)


def _single(entry: Any, what: str) -> tuple[str, Any]:
    if not isinstance(entry, dict) or len(entry) != 1:
        raise _Invalid(f"each {what} entry must be a one-key mapping ('name: ...')")
    ((key, value),) = entry.items()
    return key, value


def _packages(value: Any, name: str) -> tuple[Package, ...]:
    if not isinstance(value, list):
        raise _Invalid(f"must be a list of 'name: {{paths: ...}}', not a {_shape(value)}")
    out = []
    for entry in value:
        key, spec = _single(entry, "package")
        spec = {} if spec is None else spec
        if not isinstance(spec, dict):
            raise _Invalid(f"package {shown(key)} must be a mapping (summary, paths, rundeps...)")
        expanded = check_name(key.replace("%(name)", name), what=f"package {shown(key)}")
        out.append(Package(
            name=expanded,
            summary=_plain(spec["summary"]) if spec.get("summary") is not None else "",
            description=_text(spec["description"]) if spec.get("description") else "",
            rundeps=tuple(d.replace("%(name)", name) for d in strings(spec.get("rundeps", []))),
            paths=_path_rules(spec.get("paths", [])),
            conflicts=strings(spec.get("conflicts", [])),
        ))  # fmt: skip
    return tuple(out)


def _tuning(value: Any, _name: str = "") -> tuple[Tuning, ...]:
    if not isinstance(value, list):
        raise _Invalid(f"must be a list of groups, not a {_shape(value)}")
    out = []
    for entry in value:
        if isinstance(entry, str):
            out.append(Tuning(entry.strip()))
            continue
        group, setting = _single(entry, "tuning")
        if not isinstance(setting, str):
            raise _Invalid(f"group {shown(group)}: the setting must be yes, no or an option")
        if is_flag(setting):
            out.append(Tuning(group, flag(setting)))
        else:
            out.append(Tuning(group, setting.strip()))
    return tuple(out)


def _steps(raw: Mapping[str, Any]) -> Steps:
    values: dict[str, str | None] = {}
    for key in (*STEPS, "environment"):
        value = raw.get(key)
        if value is not None and not isinstance(value, str):
            raise _Invalid(f"{shown(key)} must be a script (text), not a {_shape(value)}", key)
        if key == "environment" and value is not None and value.strip() == "(null)":
            value = None
        values[key] = value
    return Steps(**values)


def _profiles(value: Any) -> tuple[tuple[str, Steps], ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _Invalid(f"'profiles' must be a list of 'target: {{steps}}', not a {_shape(value)}")
    out = []
    for entry in value:
        try:
            key, spec = _single(entry, "profile")
            if not isinstance(spec, dict):
                raise _Invalid(f"profile {shown(key)} must be a mapping of steps")
            unknown = sorted(set(spec) - {*STEPS, "environment"})
            if unknown:
                raise _Invalid(f"profile {shown(key)} has keys a profile cannot have: "
                               f"{', '.join(unknown)}")  # fmt: skip
            out.append((key.strip(), _steps(spec)))
        except _Invalid as exc:
            raise _Invalid(f"'profiles': {exc}") from None
    return tuple(out)


_READERS: dict[str, Any] = {
    "summary": _plain, "description": _description, "homepage": _plain,
    "license": _strings, "builddeps": _strings, "checkdeps": _strings, "rundeps": _strings,
    "paths": _path_rules, "conflicts": _strings, "packages": _packages, "tuning": _tuning,
    "architectures": _strings, "toolchain": _toolchain, "emul32": _flag, "mold": _flag,
    "networking": _flag, "strip": _flag, "compressman": _flag, "cspgo": _flag,
    "samplepgo": _flag,
}
