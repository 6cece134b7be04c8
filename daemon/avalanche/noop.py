"""The ``noop`` backend: empty packages named and providing what the committed manifest says.

For dry runs and benchmarks of the whole farm: no subprocess, no sources, no build
dependencies, just the packages of ``manifest.<arch>.jsonc`` (Serpent's format) with their
``depends`` and ``provides``. A recipe without a manifest yields one empty package named
after the source.
"""

from __future__ import annotations

from pathlib import Path

from daemon.formats import manifest as manifest_format
from daemon.formats.stone import RecipeError as FormatError

from .backend import BuildContext, BuildProducts, DeclaredPackage
from .errors import RecipeError


def load_manifest_packages(path: Path) -> tuple[DeclaredPackage, ...]:
    """The packages a Serpent ``manifest.<arch>.jsonc`` lists."""
    try:
        with path.open("rb") as handle:
            data = handle.read(manifest_format.MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise RecipeError(f"cannot read manifest {path.name}: {exc}") from exc
    try:
        parsed = manifest_format.parse_manifest(data, path.name, keep_files=False)
    except FormatError as exc:
        raise RecipeError(str(exc)) from None
    return tuple(DeclaredPackage(name=p.name, depends=p.depends, provides=p.provides)
                 for p in parsed.packages)


class NoopBackend:
    name = "noop"
    needs_inputs = False

    def build(self, ctx: BuildContext) -> BuildProducts:
        manifest = ctx.tree.recipe_dir / manifest_format.manifest_file(ctx.arch)
        if manifest.is_file():
            declared = load_manifest_packages(manifest)
        else:
            declared = (DeclaredPackage(name=ctx.recipe.name),)
        ctx.log.phase(f"noop: declaring {len(declared)} empty package(s) from {manifest.name}")
        summary = ctx.recipe.summary
        return BuildProducts(
            declared=tuple(
                DeclaredPackage(p.name, summary, p.depends, p.provides) for p in declared
            )
        )
