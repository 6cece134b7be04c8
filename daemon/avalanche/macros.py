"""A documented subset of boulder's macros, expanded before a step runs.

Two forms, as in boulder: ``%(name)`` is a definition (a value), ``%name`` an action (a
command line). Definitions are expanded everywhere, actions where ``%name`` is a whole word.
An unknown ``%(name)`` fails the build naming it; an unknown ``%word`` is left alone (it may
be shell, e.g. ``printf %s``), so a misspelt action fails in bash as "command not found".

Definitions (paths are inside the installed system unless said otherwise):

========================  ============================================================
``%(name)``, ``%(version)``, ``%(release)``  the recipe's identity
``%(prefix)``             /usr
``%(bindir)``             /usr/bin
``%(sbindir)``            /usr/sbin
``%(libdir)``             /usr/lib
``%(libexecdir)``         /usr/lib/%(name)
``%(includedir)``         /usr/include
``%(datadir)``            /usr/share
``%(mandir)``, ``%(docdir)``, ``%(infodir)``  /usr/share/{man,doc,info}
``%(vendordir)``          /usr/share/defaults
``%(completionsdir)``     /usr/share/bash-completion/completions
``%(sysconfdir)``         /etc
``%(localstatedir)``      /var
``%(runstatedir)``        /run
``%(libsuffix)``          (empty)
``%(target_triple)``      <arch>-linux-gnu
``%(installroot)``        the install directory (``$installdir``) on the build host
``%(workdir)``            the work directory (``$workdir``), where sources are unpacked
``%(sourcedir)``          the verified upstream files (``$sourcedir``)
``%(pkgdir)``             ``pkg/`` beside stone.yaml (``$pkgdir``)
``%(builddir)``           serpent_builddir (out-of-tree build directory for cmake/meson)
``%(jobs)``               parallel jobs of this builder
``%(cc)``, ``%(cxx)``, ``%(cpp)``, ``%(ar)``, ``%(ld)``  gcc, g++, cpp, ar, ld
``%(cflags)``, ``%(cxxflags)``, ``%(ldflags)``  -O2 -pipe, -O2 -pipe, -Wl,-O1
========================  ============================================================

Actions: ``%configure``, ``%reconfigure``, ``%autogen``, ``%make``, ``%make_install``,
``%cmake``, ``%cmake_build``, ``%cmake_install``, ``%cmake_test``, ``%meson``,
``%meson_build``, ``%meson_install``, ``%meson_test``, ``%patch``, ``%install_file``,
``%install_exe``, ``%install_bin``, ``%install_dir`` (see :data:`ACTIONS`).

Shell variables exported to every step: ``$workdir``, ``$installdir``, ``$sourcedir``,
``$pkgdir``, ``$name``, ``$version``, ``$release``, ``$jobs``, ``CC``, ``CXX``, ``CFLAGS``,
``CXXFLAGS``, ``LDFLAGS``; the recipe's ``environment`` runs before each step.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import RecipeError

_DEF = re.compile(r"%\(([A-Za-z0-9_]+)\)")
_ACTION = re.compile(r"%([A-Za-z_][A-Za-z0-9_]*)\b(?!\()")
_MAX_DEPTH = 8

BASE_DEFINITIONS: dict[str, str] = {
    "prefix": "/usr",
    "bindir": "%(prefix)/bin",
    "sbindir": "%(prefix)/sbin",
    "libdir": "%(prefix)/lib",
    "libexecdir": "%(libdir)/%(name)",
    "includedir": "%(prefix)/include",
    "datadir": "%(prefix)/share",
    "mandir": "%(datadir)/man",
    "docdir": "%(datadir)/doc",
    "infodir": "%(datadir)/info",
    "vendordir": "%(datadir)/defaults",
    "completionsdir": "%(datadir)/bash-completion/completions",
    "sysconfdir": "/etc",
    "localstatedir": "/var",
    "runstatedir": "/run",
    "libsuffix": "",
    "builddir": "serpent_builddir",
    "cc": "gcc",
    "cxx": "g++",
    "cpp": "cpp",
    "ar": "ar",
    "ld": "ld",
    "cflags": "-O2 -pipe",
    "cxxflags": "-O2 -pipe",
    "ldflags": "-Wl,-O1",
}

_DIRS = (
    "--prefix=%(prefix) --bindir=%(bindir) --sbindir=%(sbindir) --libdir=%(libdir) "
    "--libexecdir=%(libexecdir) --includedir=%(includedir) --datadir=%(datadir) "
    "--mandir=%(mandir) --infodir=%(infodir) --sysconfdir=%(sysconfdir) "
    "--localstatedir=%(localstatedir)"
)

ACTIONS: dict[str, str] = {
    "configure": f"./configure {_DIRS}",
    "reconfigure": "autoreconf -vfi && %configure",
    "autogen": f"./autogen.sh {_DIRS}",
    "make": "make -j %(jobs)",
    "make_install": 'make -j %(jobs) install DESTDIR="%(installroot)"',
    "cmake": (
        "cmake -B %(builddir) -DCMAKE_INSTALL_PREFIX=%(prefix) -DCMAKE_BUILD_TYPE=Release "
        "-DCMAKE_INSTALL_LIBDIR=lib -DCMAKE_INSTALL_SYSCONFDIR=%(sysconfdir)"
    ),
    "cmake_build": "cmake --build %(builddir) -j %(jobs)",
    "cmake_install": 'DESTDIR="%(installroot)" cmake --install %(builddir)',
    "cmake_test": "ctest --test-dir %(builddir) -j %(jobs) --output-on-failure",
    "meson": (
        "meson setup --prefix=%(prefix) --libdir=lib --bindir=bin --sbindir=sbin "
        "--includedir=include --datadir=share --sysconfdir=%(sysconfdir) "
        "--buildtype=plain %(builddir)"
    ),
    "meson_build": "meson compile -v -j %(jobs) -C %(builddir)",
    "meson_install": 'DESTDIR="%(installroot)" meson install --no-rebuild -C %(builddir)',
    "meson_test": "meson test --no-rebuild --print-errorlogs -j %(jobs) -C %(builddir)",
    "patch": "patch -f -p1 -i",
    "install_file": "install -Dm00644",
    "install_exe": "install -Dm00755",
    "install_bin": "install -Dm00755 -t %(installroot)%(bindir)",
    "install_dir": "install -dm00755",
}


@dataclass(frozen=True)
class MacroContext:
    """The per-build values behind the definitions that are not constants."""

    name: str
    version: str
    release: int
    jobs: int
    arch: str
    installroot: str
    workdir: str
    sourcedir: str
    pkgdir: str

    def definitions(self) -> dict[str, str]:
        defs = dict(BASE_DEFINITIONS)
        defs.update(
            name=self.name,
            version=self.version,
            release=str(self.release),
            jobs=str(self.jobs),
            target_triple=f"{self.arch}-linux-gnu",
            installroot=self.installroot,
            workdir=self.workdir,
            sourcedir=self.sourcedir,
            pkgdir=self.pkgdir,
        )
        return defs


def expand(text: str, definitions: Mapping[str, str], actions: Mapping[str, str] = ACTIONS) -> str:
    """Expand actions then definitions, repeatedly, until nothing is left to expand."""
    for _ in range(_MAX_DEPTH):
        before = text
        text = _ACTION.sub(lambda m: actions.get(m.group(1), m.group(0)), text)
        text = _DEF.sub(lambda m: _definition(m.group(1), definitions), text)
        if text == before:
            return text
    raise RecipeError(f"macros nest deeper than {_MAX_DEPTH} levels (a macro refers to itself?)")


def _definition(name: str, definitions: Mapping[str, str]) -> str:
    if name not in definitions:
        known = ", ".join(sorted(definitions))
        raise RecipeError(f"unknown macro %({name}) in the recipe; this builder knows: {known}")
    return definitions[name]


def step_variables(ctx: MacroContext) -> dict[str, str]:
    """Environment variables every step sees (see the module docstring)."""
    defs = ctx.definitions()
    return {
        "workdir": ctx.workdir,
        "installdir": ctx.installroot,
        "sourcedir": ctx.sourcedir,
        "pkgdir": ctx.pkgdir,
        "name": ctx.name,
        "version": ctx.version,
        "release": str(ctx.release),
        "jobs": str(ctx.jobs),
        "CC": defs["cc"],
        "CXX": defs["cxx"],
        "CFLAGS": defs["cflags"],
        "CXXFLAGS": defs["cxxflags"],
        "LDFLAGS": defs["ldflags"],
    }
