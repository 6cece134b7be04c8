"""A recipe's steps as the scripts a build runs: macros expanded, flags and tools set, per
build target. Pure: ``cairn build-recipe --dry-run`` prints exactly what a builder runs.

Expansion is boulder's: ``%(name)`` is a definition (a value), ``%name`` an action (a
command: what follows it on the line becomes its arguments), ``%%`` a literal ``%``. Values
are expanded where they are used, recursively, at most :data:`MAX_DEPTH` levels deep. An
unknown definition is an error naming it. An unknown ``%word`` is left as written (it may be
shell: ``printf %s``) and reported, so a review or a build log shows it.

A build has one target, the builder's arch, or two when the recipe sets ``emul32``: first
``emul32/<arch>`` (32-bit, in a copy of the sources: :func:`target_workdir`), then the arch,
both installing into the same root. A target runs the steps of the profile named after it
(``emul32/x86_64``, ``emul32`` or ``x86_64``), step by step falling back to the top level's.

Each script is :data:`PREAMBLE` (the flags of the recipe's ``tuning`` for its toolchain, the
tools, cairn's variables, ``cd`` to the work directory), the ``environment``, then the step.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from events.errors import CairnError

from . import macros
from .macros import arch as arch_tables
from .macros import toolchain as toolchains
from .macros import tuning
from .stone import STEPS, Recipe, Steps

#: How deep macros may refer to macros (a macro referring to itself would never end).
MAX_DEPTH = 16
_TOKEN = re.compile(r"%%|%\(([A-Za-z0-9_]+)\)|%([A-Za-z_][A-Za-z0-9_]*)")

#: Set before every step; boulder's script base, without what the builder's environment
#: already decides (PATH, PKG_CONFIG_PATH, locale, SOURCE_DATE_EPOCH). NINJA_STATUS has no
#: ``%P`` (percentage): ninja before 1.12 refuses to run with it.
PREAMBLE = """set -o errexit -o pipefail
TERM="dumb"; export TERM
CFLAGS="%(cflags)"; export CFLAGS
CGO_CFLAGS="%(cflags)"; export CGO_CFLAGS
CXXFLAGS="%(cxxflags)"; export CXXFLAGS
CGO_CXXFLAGS="%(cxxflags)"; export CGO_CXXFLAGS
FFLAGS="%(fflags)"; export FFLAGS
LDFLAGS="%(ldflags)"; export LDFLAGS
CGO_LDFLAGS="%(ldflags) -Wl,--no-gc-sections"; export CGO_LDFLAGS
DFLAGS="%(dflags)"; export DFLAGS
RUSTFLAGS="%(rustflags)"; export RUSTFLAGS
VALAFLAGS="%(valaflags)"; export VALAFLAGS
CC="%(cc)"; export CC
CXX="%(cxx)"; export CXX
OBJC="%(objc)"; export OBJC
OBJCXX="%(objcxx)"; export OBJCXX
CPP="%(cpp)"; export CPP
OBJCPP="%(objcpp)"; export OBJCPP
OBJCXXCPP="%(objcxxcpp)"; export OBJCXXCPP
AR="%(ar)"; export AR
LD="%(ld)"; export LD
OBJCOPY="%(objcopy)"; export OBJCOPY
NM="%(nm)"; export NM
RANLIB="%(ranlib)"; export RANLIB
STRIP="%(strip)"; export STRIP
NINJA_STATUS="[%%f/%%t %%es] "; export NINJA_STATUS
%cargo_set_environment
name="%(name)"; version="%(version)"; release="%(release)"; jobs="%(jobs)"
workdir="%(workdir)"; installdir="%(installroot)"; sourcedir="%(sourcedir)"; pkgdir="%(pkgdir)"
export name version release jobs workdir installdir sourcedir pkgdir
cd "%(workdir)"
"""


class MacroError(CairnError):
    """A recipe's macros cannot be expanded (an unknown definition, endless nesting)."""


@dataclass(frozen=True, slots=True)
class Expanded:
    text: str
    #: ``%word``s that are not actions, in order of appearance, each once.
    unknown: tuple[str, ...] = ()


class Expander:
    """Expands text with one set of actions and definitions."""

    def __init__(self, actions: Mapping[str, str], definitions: Mapping[str, str]) -> None:
        self.actions = actions
        self.definitions = definitions

    def expand(self, text: str) -> Expanded:
        unknown: dict[str, None] = {}
        return Expanded(self._expand(text, 0, unknown), tuple(unknown))

    def _expand(self, text: str, depth: int, unknown: dict[str, None]) -> str:
        if depth > MAX_DEPTH:
            raise MacroError(f"macros nest deeper than {MAX_DEPTH} levels (does one refer to "
                             "itself?)")  # fmt: skip

        def one(match: re.Match[str]) -> str:
            definition, action = match.group(1), match.group(2)
            if definition is not None:
                value = self.definitions.get(definition)
                if value is None:
                    raise MacroError(f"unknown macro %({definition})")
                return self._expand(value, depth + 1, unknown)
            if action is not None:
                command = self.actions.get(action)
                if command is None:
                    unknown[f"%{action}"] = None
                    return match.group(0)
                return self._expand(command.rstrip("\n"), depth + 1, unknown)
            return "%"

        return _TOKEN.sub(one, text)


@dataclass(frozen=True, slots=True)
class BuildPaths:
    """The build's directories as its steps see them (inside the sandbox)."""

    workdir: str
    installroot: str
    sourcedir: str
    pkgdir: str


def target_workdir(workdir: str, target: str, arch: str) -> str:
    """Where a target builds: the work directory itself for the native target, a copy of
    it beside it (``<workdir>-emul32``) for the 32-bit one, so neither sees the other's
    objects."""
    return workdir if target == arch else f"{workdir}-{target.split('/', 1)[0]}"


@dataclass(frozen=True, slots=True)
class StepScript:
    """One step's script: the target's preamble, then the environment and the step."""

    target: str
    step: str
    preamble: str
    body: str
    unknown: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        return f"{self.preamble}{self.body}"


@dataclass(frozen=True, slots=True)
class BuildPlan:
    toolchain: str
    targets: tuple[str, ...]
    scripts: tuple[StepScript, ...]
    flags: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def unknown(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(u for s in self.scripts for u in s.unknown))


def targets_for(recipe: Recipe, arch: str) -> tuple[str, ...]:
    """The build targets, in the order they build."""
    if not recipe.emul32:
        return (arch,)
    emul32 = arch_tables.emul32_target(arch)
    if emul32 not in arch_tables.TARGETS:
        raise MacroError(f"emul32: there is no 32-bit target on {arch}")
    return (emul32, arch)


def target_steps(recipe: Recipe, target: str) -> Steps:
    """The target's steps: its profile's where it has them, else the top level's."""
    names = [target] + ([target.split("/", 1)[0]] if "/" in target else [])
    profile = next((p for n in names if (p := recipe.profile(n)) is not None), None)
    if profile is None:
        return recipe.steps
    values = {s: profile.step(s) or recipe.steps.step(s) for s in (*STEPS, "environment")}
    return Steps(**values)


def definitions(recipe: Recipe, *, target: str, arch: str, jobs: int, toolchain: str,
                paths: BuildPaths) -> dict[str, str]:  # fmt: skip
    """Every definition a step of ``target`` sees."""
    spec = arch_tables.TARGETS.get(target)
    if spec is None:
        raise MacroError(f"this builder has no macros for the build target {target}")
    try:
        sets = tuning.enabled_sets((t.group, t.value) for t in recipe.tuning)
    except tuning.TuningError as exc:
        raise MacroError(str(exc)) from None
    flags = tuning.flags(sets, toolchain, spec.flags)
    compilers = toolchains.COMPILERS[toolchain]
    workdir = target_workdir(paths.workdir, target, arch)
    defs = {**macros.tables().definitions, **toolchains.TOOLS, **compilers,
            **spec.definitions}  # fmt: skip
    defs.update(
        name=recipe.name, version=recipe.version, release=str(recipe.release), jobs=str(jobs),
        workdir=workdir, buildroot=workdir, installroot=paths.installroot,
        sourcedir=paths.sourcedir, pkgdir=paths.pkgdir, pgo_dir=f"{workdir}-pgo",
        pgo_stage="", sourcedateepoch="0",
        cflags=flags["c"], cxxflags=flags["cxx"], fflags=flags["f"],
        ldflags=" ".join(f for f in (flags["ld"], compilers["linker_flags"]) if f),
        dflags=flags["d"], rustflags=flags["rust"], valaflags=flags["vala"],
    )  # fmt: skip
    return defs


def plan(recipe: Recipe, *, arch: str, jobs: int, paths: BuildPaths,
         toolchain: str | None = None) -> BuildPlan:  # fmt: skip
    """Every step of every target, expanded (``toolchain``: the one the build uses, default
    the recipe's). Raises :class:`MacroError` naming the target and step."""
    chosen = toolchain or str(recipe.toolchain)
    targets = targets_for(recipe, arch)
    actions = macros.tables().actions
    scripts: list[StepScript] = []
    flags: dict[str, dict[str, str]] = {}
    for target in targets:
        defs = definitions(recipe, target=target, arch=arch, jobs=jobs, toolchain=chosen,
                           paths=paths)  # fmt: skip
        flags[target] = {k: defs[k] for k in ("cflags", "cxxflags", "ldflags", "rustflags")}
        expander = Expander(actions, defs)
        steps = target_steps(recipe, target)
        for step in STEPS:
            body = steps.step(step)
            if not body or step == "workload":
                continue
            try:
                preamble = expander.expand(PREAMBLE).text
                done = expander.expand(f"{steps.environment or ''}\n{body}")
            except MacroError as exc:
                raise MacroError(f"{target} step {step}: {exc}") from None
            scripts.append(StepScript(target, step, preamble, done.text, done.unknown))
    return BuildPlan(chosen, targets, tuple(scripts), flags)
