"""Parsing of Serpent OS ``stone.yaml`` recipes into frozen records.

Summit reads thousands of recipes per commit, so parsing uses libyaml's C loader and only
walks the node tree (to find a line number) when a recipe is wrong. A recipe that cannot be
used raises :class:`RecipeError` carrying the file and line, so the tree reader can record it
and go on with the rest of the tree.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from events.errors import CairnError

_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")
_MAX_NAME = 256
STONE_FILE = "stone.yaml"
#: The build steps of a recipe, in the order boulder runs them.
STEPS = ("setup", "build", "install", "check")


class RecipeError(CairnError):
    """A recipe or manifest file that cannot be used, with where to look (file and line)."""

    def __init__(self, file: str, line: int, message: str) -> None:
        super().__init__(f"{file}:{line}: {message}")
        self.file = file
        self.line = line
        self.message = message

    def record(self, path: str) -> BrokenRecipe:
        """The frozen record of this error, for a tree that goes on without the recipe."""
        return BrokenRecipe(path=path, file=self.file, line=self.line, message=self.message)


@dataclass(frozen=True, slots=True)
class BrokenRecipe:
    """A recipe directory whose files could not be parsed: summit plans nothing for it."""

    path: str
    file: str
    line: int
    message: str

    def to_json(self) -> dict[str, object]:
        return {"path": self.path, "file": self.file, "line": self.line, "message": self.message}


@dataclass(frozen=True, slots=True)
class Upstream:
    """One source a recipe fetches: a URL with its hash (tarballs) or ref (git)."""

    url: str
    hash: str | None = None
    options: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Recipe:
    """What summit needs from a ``stone.yaml``; ``path`` is the recipe directory in the tree."""

    name: str
    version: str
    release: int
    path: str
    summary: str = ""
    description: str = ""
    homepage: str = ""
    license: tuple[str, ...] = ()
    upstreams: tuple[Upstream, ...] = ()
    builddeps: tuple[str, ...] = ()
    checkdeps: tuple[str, ...] = ()
    rundeps: tuple[str, ...] = ()
    steps: tuple[tuple[str, str], ...] = ()
    architectures: tuple[str, ...] = ()
    emul32: bool = False
    toolchain: str = ""
    extra: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    @property
    def file(self) -> str:
        return f"{self.path}/{STONE_FILE}" if self.path else STONE_FILE

    @property
    def build_deps(self) -> tuple[str, ...]:
        """Everything the build needs installed: ``builddeps`` then ``checkdeps``."""
        return self.builddeps + self.checkdeps

    def step(self, name: str) -> str | None:
        return dict(self.steps).get(name)

    def builds_for(self, arch: str) -> bool:
        """Whether the recipe builds on ``arch`` (no ``architectures`` key: everywhere)."""
        if not self.architectures:
            return True
        return arch in self.architectures or "native" in self.architectures


def parse_stone(data: bytes | str, path: str) -> Recipe:
    """Parse one ``stone.yaml`` (the file at ``path/stone.yaml``); raise :class:`RecipeError`."""
    file = f"{path}/{STONE_FILE}" if path else STONE_FILE
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    try:
        doc = yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader (C or Python)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise RecipeError(file, line, f"invalid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise RecipeError(file, 1, f"invalid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise RecipeError(file, 1, "a recipe must be a YAML mapping (name: ..., version: ...)")
    return _from_mapping(doc, text, path, file)


def _from_mapping(doc: Mapping[Any, Any], text: str, path: str, file: str) -> Recipe:
    def fail(key: str | None, message: str) -> RecipeError:
        return RecipeError(file, _line_of(text, key), message)

    name = doc.get("name")
    if not isinstance(name, str) or not _NAME.match(name) or len(name) > _MAX_NAME:
        if name is None:
            raise fail(None, "missing required field 'name'")
        raise fail("name", f"'name' must be a package name (letters, digits, _.+-), not {name!r}")
    release = doc.get("release")
    if release is None:
        raise fail(None, "missing required field 'release'")
    if isinstance(release, bool) or not isinstance(release, int) or release < 0:
        raise fail("release", f"'release' must be a whole number >= 0, not {release!r}")
    version = _version(doc.get("version"), text)
    if version is None:
        raise fail(None if "version" not in doc else "version", "missing or empty 'version'")
    lists = {}
    for key in ("license", "builddeps", "checkdeps", "rundeps", "architectures"):
        try:
            lists[key] = _strings(doc.get(key))
        except ValueError as exc:
            raise fail(key, f"'{key}' {exc}") from None
    try:
        upstreams = _upstreams(doc.get("upstreams"))
    except ValueError as exc:
        raise fail("upstreams", f"'upstreams' {exc}") from None
    steps = tuple((s, str(doc[s])) for s in STEPS if isinstance(doc.get(s), str))
    known = {"name", "version", "release", "summary", "description", "homepage", "upstreams",
             "emul32", "toolchain", *lists, *STEPS}
    extra = tuple((str(k), repr(v)) for k, v in doc.items() if k not in known)
    return Recipe(
        name=name, version=version, release=release, path=path,
        summary=_text(doc.get("summary")), description=_text(doc.get("description")),
        homepage=_text(doc.get("homepage")), license=lists["license"], upstreams=upstreams,
        builddeps=lists["builddeps"], checkdeps=lists["checkdeps"], rundeps=lists["rundeps"],
        steps=steps, architectures=lists["architectures"], emul32=doc.get("emul32") is True,
        toolchain=_text(doc.get("toolchain")), extra=extra,
    )


def _version(value: object, text: str) -> str | None:
    """The version as written: YAML would turn ``1.10`` into the float ``1.1``."""
    if isinstance(value, str):
        return value.strip() or None
    if value is None or isinstance(value, bool | list | dict):
        return None
    raw = re.search(r"^version\s*:\s*['\"]?([^\s'\"#]+)", text, re.MULTILINE)
    return raw.group(1) if raw else str(value)


def _text(value: object) -> str:
    return "" if value is None else str(value).strip()


def _strings(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list):
        raise ValueError(f"must be a list of strings, not {type(value).__name__}")
    out = []
    for item in value:
        if not isinstance(item, str | int | float) or isinstance(item, bool):
            raise ValueError(f"must be a list of strings; found {item!r}")
        out.append(str(item))
    return tuple(out)


def _upstreams(value: object) -> tuple[Upstream, ...]:
    """``- url : hash`` or ``- url: {hash: ..., unpackdir: ...}`` (git: ``ref:``)."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ValueError("must be a list of 'url : hash' entries")
    out = []
    for item in value:
        if isinstance(item, str):
            out.append(Upstream(url=item))
            continue
        if not isinstance(item, dict) or len(item) != 1:
            raise ValueError(f"entry {item!r} is not 'url : hash'")
        ((url, spec),) = item.items()
        if isinstance(spec, dict):
            digest = spec.get("hash", spec.get("ref"))
            options = tuple(sorted((str(k), str(v)) for k, v in spec.items()))
            out.append(Upstream(str(url), None if digest is None else str(digest), options))
        else:
            out.append(Upstream(str(url), None if spec is None else str(spec)))
    return tuple(out)


def _line_of(text: str, key: str | None) -> int:
    """1-based line of top-level ``key`` (or of the document's mapping, or 1)."""
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError:
        return 1
    if not isinstance(node, yaml.MappingNode):
        return 1
    if key is not None:
        for k, _v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return int(k.start_mark.line) + 1
    return int(node.start_mark.line) + 1
