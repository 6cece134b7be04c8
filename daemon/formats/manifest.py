"""``manifest.<arch>.jsonc``: the build record committed beside a recipe, read and written here.

boulder writes it after a build; it lists every package the recipe produced with what it
provides, depends on and holds. Summit learns from it which source provides
``pkgconfig(zlib)`` before anything is published; the ``noop`` backend declares its packages
from it; a builder writes one for each build (:func:`render_manifest`), as boulder does.

The file is JSON with comments. Real ones carry a comment header only, so the fast path
strips leading comments and the slow path (comments anywhere) strips them outside strings,
keeping their newlines so that errors still name the right line. Files larger than
:data:`MAX_MANIFEST_BYTES` are refused; package names follow :func:`daemon.package.check_name`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

import msgspec

from daemon.package import FileType, InvalidName, check_name, name_provider
from daemon.package import Manifest as PackageManifest

from .stone import RecipeError

#: The largest manifest read (real ones reach 3 MB for a kernel's thousands of files).
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
MANIFEST_VERSION = "0.2"
HEADER = "/** Human readable report. This is not consumed by boulder */\n"

_LEADING = re.compile(rb"\A(?:\s+|//[^\n]*|/\*.*?\*/)*", re.DOTALL)
#: A string (group 1, kept; written as an "unrolled loop" so long strings cost one scan), a
#: line comment or a block comment (removed).
_ANYWHERE = re.compile(rb'("[^"\\]*(?:\\.[^"\\]*)*")|//[^\n]*|/\*.*?\*/', re.DOTALL)
_NAME_PROVIDER = re.compile(r"^name\((.+)\)$")


def manifest_file(arch: str) -> str:
    return f"manifest.{arch}.jsonc"


class _Head(msgspec.Struct, frozen=True):
    """A package without its files: what summit reads (decoding thousands of file names
    it would drop was most of a manifest's cost)."""

    name: str | None = None
    provides: list[str] = msgspec.field(default_factory=list)
    depends: list[str] = msgspec.field(default_factory=list)
    build_depends: list[str] = msgspec.field(default_factory=list, name="build-depends")


class _Package(_Head, frozen=True):
    files: list[str] = msgspec.field(default_factory=list)


class _HeadDocument(msgspec.Struct, frozen=True):
    packages: dict[str, _Head]
    source_name: str | None = msgspec.field(default=None, name="source-name")


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
    source_name: str | None = None

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


def parse_manifest(data: bytes, file: str, *, keep_files: bool = True) -> Manifest:
    """Read one manifest; raise :class:`RecipeError` with the line of the problem."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise RecipeError(file, 1, f"the manifest is {len(data)} bytes; at most "
                                   f"{MAX_MANIFEST_BYTES} are read")  # fmt: skip
    shape: type[_Document | _HeadDocument] = _Document if keep_files else _HeadDocument
    try:
        doc = msgspec.json.decode(_fast_body(data), type=shape)
    except msgspec.DecodeError:
        doc = _decode_slow(data, file, shape)
    packages = []
    for key, pkg in sorted(doc.packages.items()):
        try:
            name = check_name(pkg.name or key, what="package")
        except InvalidName as exc:
            raise RecipeError(file, 1, str(exc)) from None
        packages.append(ManifestPackage(
            name=name, provides=tuple(pkg.provides), depends=tuple(pkg.depends),
            build_depends=tuple(pkg.build_depends),
            files=tuple(pkg.files) if isinstance(pkg, _Package) else (),
        ))  # fmt: skip
    return Manifest(file=file, packages=tuple(packages), source_name=doc.source_name)


def _fast_body(data: bytes) -> bytes:
    head = _LEADING.match(data)
    return data[head.end():] if head else data


def _keep_lines(match: re.Match[bytes]) -> bytes:
    """A string stays; a comment becomes its newlines, so line numbers still hold."""
    return match.group(1) or b"\n" * match.group(0).count(b"\n")


def _decode_slow(
    data: bytes, file: str, shape: type[_Document | _HeadDocument]
) -> _Document | _HeadDocument:
    body = _ANYWHERE.sub(_keep_lines, data)
    try:
        return msgspec.json.decode(body, type=shape)
    except msgspec.ValidationError as exc:
        raise RecipeError(file, 1, f"manifest does not match the expected shape: {exc}") from None
    except msgspec.DecodeError as exc:
        raise RecipeError(file, _line_at(exc, body), f"invalid JSON: {exc}") from None


def _line_at(exc: msgspec.DecodeError, body: bytes) -> int:
    """msgspec says ``byte N``; comments kept their newlines, so count lines up to it."""
    match = re.search(r"byte (\d+)", str(exc))
    return body[: int(match.group(1))].count(b"\n") + 1 if match else 1


def render_manifest(source: str, version: str, release: int, build_depends: Iterable[str],
                    packages: Iterable[PackageManifest]) -> str:
    """The ``manifest.<arch>.jsonc`` of a build, to commit beside its ``stone.yaml``.

    Like boulder's: per package its build-depends, depends, files (not directories) and
    provides (without the implicit ``name(x)`` and plain-name providers every package has).
    """
    wanted = sorted(build_depends)
    doc = {
        "manifest-version": MANIFEST_VERSION,
        "packages": {
            m.name: {
                "build-depends": wanted,
                "depends": sorted(m.depends),
                "files": sorted(f"/{f.path}" for f in m.files if f.type is not FileType.DIR),
                "name": m.name,
                "provides": sorted(p for p in m.provides
                                   if p not in (m.name, name_provider(m.name))),
            }
            for m in sorted(packages, key=lambda m: m.name)
        },
        "source-name": source,
        "source-release": str(release),
        "source-version": version,
    }
    return HEADER + json.dumps(doc, indent="\t", sort_keys=True) + "\n"
