"""Parsing of ``manifest.<arch>.jsonc``: the build record committed beside a recipe.

It lists every package the recipe produced last time with what it provides, which is where
summit learns which source provides ``pkgconfig(zlib)`` before anything is published. The
files are JSON with comments; real ones carry a comment header only, so the fast path strips
leading comments and the slow path (comments anywhere) strips them outside strings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import msgspec

from daemon.summit.planning.recipe import RecipeError

_LEADING = re.compile(rb"\A(?:\s+|//[^\n]*|/\*.*?\*/)*", re.DOTALL)
_ANYWHERE = re.compile(rb'("(?:\\.|[^"\\])*")|//[^\n]*|/\*.*?\*/', re.DOTALL)
_NAME_PROVIDER = re.compile(r"^name\((.+)\)$")


def manifest_file(arch: str) -> str:
    return f"manifest.{arch}.jsonc"


class _Package(msgspec.Struct, frozen=True):
    name: str | None = None
    provides: list[str] = msgspec.field(default_factory=list)
    depends: list[str] = msgspec.field(default_factory=list)
    build_depends: list[str] = msgspec.field(default_factory=list, name="build-depends")
    files: list[str] = msgspec.field(default_factory=list)


class _Document(msgspec.Struct, frozen=True):
    packages: dict[str, _Package]
    source_name: str | None = msgspec.field(default=None, name="source-name")


@dataclass(frozen=True, slots=True)
class ManifestPackage:
    """One package the recipe builds: its name, what it provides and needs, its files."""

    name: str
    provides: tuple[str, ...] = ()
    depends: tuple[str, ...] = ()
    build_depends: tuple[str, ...] = ()
    files: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Manifest:
    file: str
    packages: tuple[ManifestPackage, ...]

    def providers(self) -> frozenset[str]:
        """Every name a dependency can use to reach these packages (names included)."""
        out: set[str] = set()
        for package in self.packages:
            out.add(package.name)
            out.update(normalise(p) for p in package.provides)
        return frozenset(out)


def normalise(name: str) -> str:
    """``name(x)`` and ``x`` are the same dependency: a package's own name provides it."""
    match = _NAME_PROVIDER.match(name)
    return match.group(1) if match else name


def _keep_lines(match: re.Match[bytes]) -> bytes:
    """A string stays; a comment becomes its newlines, so line numbers still hold."""
    return match.group(1) or b"\n" * match.group(0).count(b"\n")


def parse_manifest(data: bytes, file: str, *, keep_files: bool = True) -> Manifest:
    """Parse one manifest; raise :class:`RecipeError` with the line of the problem."""
    try:
        doc = msgspec.json.decode(_fast_body(data), type=_Document)
    except msgspec.DecodeError:
        doc = _decode_slow(data, file)
    packages = tuple(
        ManifestPackage(
            name=pkg.name or key,
            provides=tuple(pkg.provides),
            depends=tuple(pkg.depends),
            build_depends=tuple(pkg.build_depends),
            files=tuple(pkg.files) if keep_files else (),
        )
        for key, pkg in sorted(doc.packages.items())
    )
    return Manifest(file=file, packages=packages)


def _fast_body(data: bytes) -> bytes:
    head = _LEADING.match(data)
    return data[head.end():] if head else data


def _decode_slow(data: bytes, file: str) -> _Document:
    body = _ANYWHERE.sub(_keep_lines, data)
    try:
        return msgspec.json.decode(body, type=_Document)
    except msgspec.ValidationError as exc:
        raise RecipeError(file, 1, f"manifest does not match the expected shape: {exc}") from None
    except msgspec.DecodeError as exc:
        raise RecipeError(file, _line_at(exc, body), f"invalid JSON: {exc}") from None


def _line_at(exc: msgspec.DecodeError, body: bytes) -> int:
    """msgspec says ``byte N``; comments kept their newlines, so count lines up to it."""
    match = re.search(r"byte (\d+)", str(exc))
    return body[: int(match.group(1))].count(b"\n") + 1 if match else 1
