"""The declaration of a build environment: a small TOML file, read and checked here.

::

    name = "debian-bookworm-c"          # letters, digits, _.+- (at most 64)
    arch = "x86_64"                      # optional; default: this host's
    source_date_epoch = 1700000000       # optional; mtimes in the archive, and mmdebstrap's

    [base]                               # a Debian base made by mmdebstrap
    suite = "bookworm"
    variant = "minbase"                  # optional; an mmdebstrap --variant
    packages = ["gcc", "libc6-dev", "make", "pkgconf"]
    components = ["main"]                # optional; default: the host's for the suite
    suites = ["bookworm-updates"]        # optional extra suites (sources from the host)
    mirror = "http://deb.debian.org/debian"  # optional; default: the host's apt sources
    exclude = ["/usr/share/doc/*"]       # optional dpkg path-exclude patterns
    keep = ["/usr/share/doc/*/copyright"]  # optional dpkg path-include patterns

    parent = "base.tar.zst"              # optional, instead of [base]: an environment archive
                                         # (relative to this file) to layer on, unchanged

    [layer]                              # packages from a cairn channel, unpacked on top
    index = "http://vessel:8081/volatile/x86_64/current/index.json"
    packages = ["libgreet-devel"]        # providers, as builddeps spell them
    key = "vessel.pub"                   # optional: verify the index's minisign signature

At least one of ``[base]``, ``parent`` and ``[layer]``; not both ``[base]`` and ``parent``.
A relative ``key`` or ``parent`` is relative to the file.
"""

from __future__ import annotations

import hashlib
import platform
import re
import tomllib
from pathlib import Path

import msgspec

from .errors import BuildEnvError

#: The default ``source_date_epoch``: a fixed instant, so two builds agree without saying it.
DEFAULT_EPOCH = 1_700_000_000
VARIANTS = ("extract", "custom", "essential", "apt", "required", "minbase", "buildd",
            "important", "debootstrap", "standard")
_WORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+:~-]*$")
_PATTERN = re.compile(r"^/[^\s\0]*$")

#: cairn's arch names (as packages carry them) and dpkg's.
DPKG_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "i686": "i386", "riscv64": "riscv64",
             "ppc64le": "ppc64el", "s390x": "s390x"}


class Base(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    suite: str
    variant: str = "minbase"
    packages: list[str] = msgspec.field(default_factory=list)
    components: list[str] = msgspec.field(default_factory=list)
    suites: list[str] = msgspec.field(default_factory=list)
    mirror: str | None = None
    exclude: list[str] = msgspec.field(default_factory=list)
    keep: list[str] = msgspec.field(default_factory=list)


class Layer(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    index: str
    packages: list[str]
    key: str | None = None


class Declaration(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str
    arch: str = msgspec.field(default_factory=lambda: host_arch())
    source_date_epoch: int = DEFAULT_EPOCH
    base: Base | None = None
    #: An environment archive this one is made from (then the layer goes on top of it).
    parent: str | None = None
    layer: Layer | None = None

    def key(self) -> str:
        """sha256 of the canonical form: equal for declarations that say the same thing."""
        return hashlib.sha256(msgspec.json.encode(self)).hexdigest()

    @property
    def dpkg_arch(self) -> str:
        return DPKG_ARCH[self.arch]


def host_arch() -> str:
    machine = platform.machine()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)


def load(path: Path) -> Declaration:
    """Read and check the declaration at ``path``; errors name the file and the field."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BuildEnvError(f"declaration {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BuildEnvError(f"declaration {path} is not valid TOML: {exc}") from exc
    return parse(raw, origin=str(path), relative_to=path.parent)


def parse(raw: dict[str, object], *, origin: str, relative_to: Path | None = None
          ) -> Declaration:
    try:
        decl = msgspec.convert(raw, Declaration)
    except msgspec.ValidationError as exc:
        raise BuildEnvError(f"declaration {origin}: {exc}") from exc
    _check(decl, origin)
    if decl.parent is not None and relative_to is not None:
        decl = msgspec.structs.replace(decl, parent=str((relative_to / decl.parent).resolve()))
    if decl.layer is not None and decl.layer.key is not None and relative_to is not None:
        key = (relative_to / decl.layer.key).resolve()
        decl = msgspec.structs.replace(decl, layer=msgspec.structs.replace(decl.layer,
                                                                            key=str(key)))
    return decl


def _check(decl: Declaration, origin: str) -> None:
    def fail(message: str) -> BuildEnvError:
        return BuildEnvError(f"declaration {origin}: {message}")

    if not re.match(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,63}$", decl.name):
        raise fail(f"name {decl.name!r}: letters, digits and _.+- only, at most 64")
    if decl.arch not in DPKG_ARCH:
        raise fail(f"arch {decl.arch!r} is not one of {', '.join(sorted(DPKG_ARCH))}")
    if decl.source_date_epoch < 0:
        raise fail("source_date_epoch must not be negative")
    if decl.base is None and decl.layer is None and decl.parent is None:
        raise fail("declares neither [base] nor [layer] (nor parent); an environment needs one")
    if decl.base is not None and decl.parent is not None:
        raise fail("declares both [base] and parent; an environment starts from one of them")
    if (base := decl.base) is not None:
        if base.variant not in VARIANTS:
            raise fail(f"base.variant {base.variant!r} is not one of {', '.join(VARIANTS)}")
        for field, words in (("suite", [base.suite]), ("packages", base.packages),
                             ("components", base.components), ("suites", base.suites)):
            bad = [w for w in words if not _WORD.match(w)]
            if bad:
                raise fail(f"base.{field}: {bad[0]!r} is not a valid name")
        bad = [p for p in (*base.exclude, *base.keep) if not _PATTERN.match(p)]
        if bad:
            raise fail(f"base.exclude/keep: {bad[0]!r} must be an absolute path pattern")
        if base.mirror is not None and not re.match(r"^(https?|file)://\S+$", base.mirror):
            raise fail(f"base.mirror {base.mirror!r} is not an http(s) or file URL")
    if (layer := decl.layer) is not None and not layer.packages:
        raise fail("layer.packages is empty; list the packages to unpack, or drop [layer]")
