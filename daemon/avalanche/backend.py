"""The backend interface: what turns a prepared build tree into an install tree or packages.

``script`` (:mod:`.script`) runs the recipe's steps with bash; ``noop`` (:mod:`.noop`)
declares empty packages from the committed manifest, for dry runs; a ``boulder`` backend can
be added where boulder exists by implementing :class:`Backend` and listing it in
:data:`daemon.avalanche.backends.BACKENDS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .buildlog import BuildLog
from .process import Limits
from .recipe import Recipe
from .sandbox import Sandbox


@dataclass(frozen=True)
class BuildTree:
    """The directories of one build (all on the build host)."""

    root: Path

    @property
    def recipe_dir(self) -> Path:
        return self.root / "recipe"

    @property
    def workdir(self) -> Path:
        return self.root / "work"

    @property
    def sourcedir(self) -> Path:
        return self.root / "sources"

    @property
    def installdir(self) -> Path:
        return self.root / "install"

    @property
    def depsdir(self) -> Path:
        return self.root / "deps"

    @property
    def scriptsdir(self) -> Path:
        return self.root / "scripts"


@dataclass(frozen=True)
class BuildContext:
    """Everything a backend may use; ``env`` already points into the installed deps."""

    recipe: Recipe
    tree: BuildTree
    arch: str
    jobs: int
    env: dict[str, str]
    sandbox: Sandbox
    limits: Limits
    log: BuildLog


@dataclass(frozen=True)
class DeclaredPackage:
    """A package a backend declares directly (no files to analyse), e.g. from a manifest."""

    name: str
    summary: str = ""
    depends: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()


@dataclass(frozen=True)
class BuildProducts:
    """What a backend made: an install tree to split and analyse, and/or declared packages."""

    installdir: Path | None = None
    declared: tuple[DeclaredPackage, ...] = field(default_factory=tuple)


class Backend(Protocol):
    """One way of building a recipe."""

    #: Shown in the log and used to pick the backend in the configuration.
    name: str
    #: Whether the build needs its upstreams and build dependencies prepared first.
    needs_inputs: bool

    def build(self, ctx: BuildContext) -> BuildProducts:
        """Build; raise a :class:`~.errors.BuildError` subclass on failure."""
        ...

