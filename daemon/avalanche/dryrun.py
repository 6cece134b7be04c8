"""``cairn build-recipe --dry-run``: the scripts a builder would run for a recipe, printed
instead of run, with what happens to each of its keys.

The scripts are the builder's own (:func:`daemon.formats.buildscript.plan`) with the paths a
sandboxed step sees (:data:`.sandbox.BUILD_INSIDE`). A dry run cannot look into a build
environment, so it shows the recipe's toolchain (``--toolchain`` shows another).
"""

from __future__ import annotations

from dataclasses import dataclass

from daemon.formats import buildscript, keys
from daemon.formats.stone import Recipe

from .backend import BuildTree
from .sandbox import BUILD_INSIDE

_TREE = BuildTree(BUILD_INSIDE)
PATHS = buildscript.BuildPaths(
    workdir=str(_TREE.workdir), installroot=str(_TREE.installdir),
    sourcedir=str(_TREE.sourcedir), pkgdir=str(_TREE.recipe_dir / "pkg"),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class DryRun:
    text: str
    plan: buildscript.BuildPlan
    uses: tuple[keys.KeyUse, ...]

    @property
    def refused(self) -> tuple[keys.KeyUse, ...]:
        return tuple(u for u in self.uses if u.verdict is keys.Verdict.REFUSED)

    @property
    def ok(self) -> bool:
        return not self.refused and not self.plan.unknown


def dry_run(recipe: Recipe, *, arch: str, jobs: int, toolchain: str | None = None) -> DryRun:
    """Expand every step of ``recipe``; raises :class:`~daemon.formats.buildscript.MacroError`."""
    plan = buildscript.plan(recipe, arch=arch, jobs=jobs, paths=PATHS, toolchain=toolchain)
    uses = keys.review(recipe)
    lines = [f"# {recipe.name} {recipe.version}-{recipe.release} on {arch}: toolchain "
             f"{plan.toolchain}, targets {', '.join(plan.targets)}"]  # fmt: skip
    for use in uses:
        if use.verdict is not keys.Verdict.APPLIED:
            lines.append(f"# key {use.key}: {use.verdict}" + (f" ({use.why})" if use.why else ""))
    for word in plan.unknown:
        lines.append(f"# note: {word} is not a macro; it is left as written")
    shown: set[str] = set()
    for script in plan.scripts:
        if script.target not in shown:
            shown.add(script.target)
            lines += ["", f"# ---- {script.target}: before every step ----",
                      script.preamble.rstrip("\n")]
        lines += ["", f"# ---- {script.target}: {script.step} ----", script.body.strip("\n")]
    return DryRun("\n".join(lines) + "\n", plan, uses)
