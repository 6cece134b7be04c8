"""boulder's macros and definitions, kept as data: one table per family.

Each family module holds two tables, as boulder's macro files do: ``ACTIONS`` (``%name``: a
command, substituted in place; what follows it on the line becomes its arguments, which is why
the multi-line ones end by calling the function they define) and ``DEFINITIONS``
(``%(name)``: a value). Values may use other macros; :mod:`daemon.formats.script` expands
them. The build's own values (paths, jobs, the recipe's identity, flags, compilers, the
target's architecture) come from :mod:`.toolchain`, :mod:`.arch` and :mod:`.tuning`.

A name is defined by one family only (:func:`tables` refuses a clash), so where a macro comes
from is never in doubt.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from types import ModuleType

from . import (
    autotools,
    cargo,
    ccache,
    cmake,
    install,
    meson,
    misc,
    ninja,
    paths,
    perl,
    pgo,
    python,
    qt_kde,
    ruby,
    systemd,
)

FAMILIES: tuple[ModuleType, ...] = (
    paths, install, autotools, cmake, meson, ninja, cargo, python, perl, ruby, qt_kde,
    systemd, ccache, pgo, misc,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Tables:
    """Every family's actions and definitions; ``family`` maps ``%name`` and ``%(name)`` to
    the family that defines it."""

    actions: dict[str, str]
    definitions: dict[str, str]
    family: dict[str, str]


def family_name(module: ModuleType) -> str:
    return module.__name__.rsplit(".", 1)[-1]


@functools.cache
def tables() -> Tables:
    """The merged tables (callers must not change them); a name defined by two families is
    a programming error."""
    merged = Tables({}, {}, {})
    for module in FAMILIES:
        name = family_name(module)
        for table, into, spell in ((module.ACTIONS, merged.actions, "%{}"),
                                   (module.DEFINITIONS, merged.definitions, "%({})")):
            for key, value in table.items():
                shown = spell.format(key)
                if shown in merged.family:
                    raise ValueError(f"{shown} is defined by {merged.family[shown]} and {name}")
                into[key] = value
                merged.family[shown] = name
    return merged
