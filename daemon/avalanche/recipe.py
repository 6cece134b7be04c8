"""The part of a Serpent OS ``stone.yaml`` recipe that avalanche needs to build it.

This is deliberately small and separate from summit's parser: the builder only needs the
identity, the upstreams, the dependencies, the steps and the package split. Unknown keys
(``tuning``, ``emul32``, ``profiles``, ...) are ignored: the script backend does not apply them.

Upstreams are ``URL: sha256`` or ``URL: {hash: sha256, unpack: bool, rename: name}``; git
upstreams (``git|URL: ref``) are refused with a clear reason.

Names become file names (packages, archives), so the source's name, its version and every
sub-package's name are checked here, when the recipe is read, by the one rule of
:func:`daemon.package.check_name` / :func:`~daemon.package.check_version` (and again where
they become paths). A recipe that is not UTF-8 or breaks a rule is the recipe's fault: a
:class:`~.errors.RecipeError`, outcome ``failed``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from daemon.package import InvalidName, check_name, check_version

from .errors import RecipeError

STEPS = ("setup", "build", "install", "check")


@dataclass(frozen=True)
class Upstream:
    """One source to fetch: ``url`` as written, its sha256, whether to unpack it."""

    url: str
    sha256: str
    unpack: bool = True
    rename: str | None = None


@dataclass(frozen=True)
class SubPackage:
    """A package the recipe declares under ``packages:`` (name already expanded)."""

    name: str
    summary: str = ""
    paths: tuple[str, ...] = ()
    rundeps: tuple[str, ...] = ()


@dataclass(frozen=True)
class Recipe:
    name: str
    version: str
    release: int
    summary: str = ""
    upstreams: tuple[Upstream, ...] = ()
    builddeps: tuple[str, ...] = ()
    checkdeps: tuple[str, ...] = ()
    rundeps: tuple[str, ...] = ()
    environment: str = ""
    steps: tuple[tuple[str, str], ...] = ()
    packages: tuple[SubPackage, ...] = ()

    def step(self, name: str) -> str:
        return dict(self.steps).get(name, "")


def load_recipe(path: Path, *, origin: str | None = None, sources: bool = True) -> Recipe:
    """Read ``stone.yaml`` at ``path``; errors name the file and the field.

    ``sources=False`` skips the upstreams (left empty): a backend that fetches nothing
    (``noop``) must not fail on an upstream kind this builder could not fetch."""
    where = origin or str(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise RecipeError(f"{where}: the recipe is not UTF-8 text (byte {exc.start}: "
                          f"{exc.reason}); save it as UTF-8") from None  # fmt: skip
    except (OSError, yaml.YAMLError) as exc:
        raise RecipeError(f"cannot read recipe {where}: {exc}") from exc
    if not isinstance(doc, Mapping):
        raise RecipeError(f"recipe {path} is not a YAML mapping")
    return parse_recipe(doc, origin=origin or str(path), sources=sources)


def parse_recipe(doc: Mapping[str, Any], *, origin: str = "stone.yaml",
                 sources: bool = True) -> Recipe:
    """Turn a parsed ``stone.yaml`` mapping into a :class:`Recipe`."""
    for key in ("name", "version", "release"):
        if doc.get(key) in (None, ""):
            raise RecipeError(f"{origin}: the recipe has no {key!r}")
    try:
        name = check_name(str(doc["name"]), what="the recipe's name")
        version = check_version(str(doc["version"]), what="the recipe's version")
    except InvalidName as exc:
        raise RecipeError(f"{origin}: {exc}") from None
    try:
        release = int(doc["release"])
    except (TypeError, ValueError) as exc:
        raise RecipeError(f"{origin}: release {doc['release']!r} is not an integer") from exc
    steps = tuple((s, str(doc[s])) for s in STEPS if doc.get(s))
    return Recipe(
        name=name,
        version=version,
        release=release,
        summary=str(doc.get("summary") or ""),
        upstreams=tuple(_upstreams(doc.get("upstreams"), origin)) if sources else (),
        builddeps=_strings(doc, "builddeps", origin),
        checkdeps=_strings(doc, "checkdeps", origin),
        rundeps=_strings(doc, "rundeps", origin),
        environment=str(doc.get("environment") or ""),
        steps=steps,
        packages=tuple(_packages(doc.get("packages"), name, origin)),
    )


def _strings(doc: Mapping[str, Any], key: str, origin: str) -> tuple[str, ...]:
    value = doc.get(key) or []
    if not isinstance(value, list):
        raise RecipeError(f"{origin}: {key!r} must be a list of strings")
    return tuple(str(v) for v in value)


def _single(entry: Any, key: str, origin: str) -> tuple[str, Any]:
    if not isinstance(entry, Mapping) or len(entry) != 1:
        raise RecipeError(f"{origin}: each {key!r} entry must be a one-key mapping")
    ((k, v),) = entry.items()
    return str(k).strip(), v


def _upstreams(value: Any, origin: str) -> list[Upstream]:
    result = []
    for entry in value or []:
        url, spec = _single(entry, "upstreams", origin)
        if url.startswith("git|"):
            raise RecipeError(f"{origin}: git upstream {url} is not supported by this builder")
        if isinstance(spec, Mapping):
            sha = str(spec.get("hash", ""))
            unpack = bool(spec.get("unpack", True))
            rename = str(spec["rename"]) if spec.get("rename") else None
        elif isinstance(spec, int):
            raise RecipeError(f"{origin}: the sha256 of upstream {url} reads as a number; quote it")
        else:
            sha, unpack, rename = str(spec), True, None
        sha = sha.strip().lower()
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise RecipeError(f"{origin}: upstream {url} has no valid sha256 (got {sha!r})")
        result.append(Upstream(url=url, sha256=sha, unpack=unpack, rename=rename))
    return result


def _packages(value: Any, name: str, origin: str) -> list[SubPackage]:
    result = []
    for entry in value or []:
        pkg, spec = _single(entry, "packages", origin)
        spec = spec if isinstance(spec, Mapping) else {}
        try:
            expanded = check_name(pkg.replace("%(name)", name), what=f"package {pkg!r}")
        except InvalidName as exc:
            raise RecipeError(f"{origin}: {exc}") from None
        result.append(
            SubPackage(
                name=expanded,
                summary=str(spec.get("summary") or ""),
                paths=tuple(str(p) for p in spec.get("paths") or []),
                rundeps=tuple(str(d).replace("%(name)", name) for d in spec.get("rundeps") or []),
            )
        )
    return result
