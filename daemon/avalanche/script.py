"""The ``script`` backend: the recipe's steps run by ``bash -e``, sandboxed when possible.

Each of ``setup``, ``build``, ``install`` and ``check`` (when present, in that order, as
boulder does) becomes a script: the recipe's ``environment``, then the step, with macros
expanded (:mod:`.macros`), starting in ``$workdir``. The scripts are kept under
``scripts/`` of the build tree so a failed build can be reproduced by hand.
"""

from __future__ import annotations

from .backend import BuildContext, BuildProducts
from .errors import BuildTimeout, StepFailed
from .macros import MacroContext, expand, step_variables
from .process import run
from .recipe import STEPS


class ScriptBackend:
    name = "script"
    needs_inputs = True

    def build(self, ctx: BuildContext) -> BuildProducts:
        tree, recipe = ctx.tree, ctx.recipe
        macro_ctx = MacroContext(
            name=recipe.name,
            version=recipe.version,
            release=recipe.release,
            jobs=ctx.jobs,
            arch=ctx.arch,
            installroot=str(tree.installdir),
            workdir=str(tree.workdir),
            sourcedir=str(tree.sourcedir),
            pkgdir=str(tree.recipe_dir / "pkg"),
        )
        defs = macro_ctx.definitions()
        env = {**ctx.env, **step_variables(macro_ctx)}
        for d in (tree.workdir, tree.installdir, tree.scriptsdir):
            d.mkdir(parents=True, exist_ok=True)
        environment = expand(recipe.environment, defs)
        scripts = [(s, expand(recipe.step(s), defs)) for s in STEPS if recipe.step(s)]
        for step, body in scripts:
            path = tree.scriptsdir / f"{step}.sh"
            path.write_text(f'cd "$workdir"\n{environment}\n{body}\n', encoding="utf-8")
            ctx.log.phase(f"step {step}")
            try:
                status = run(
                    ["bash", "-e", str(path)],
                    cwd=tree.workdir,
                    env=env,
                    sandbox=ctx.sandbox,
                    limits=ctx.limits,
                    line=ctx.log.line,
                )
            except BuildTimeout as exc:
                raise BuildTimeout(f"step {step}: {exc}") from exc
            if status != 0:
                last = next((ln for ln in reversed(ctx.log.tail) if ln.strip()), "")
                raise StepFailed(
                    f"step {step} exited with status {status}"
                    + (f"; last output: {last[:300]}" if last else "")
                    + " (the full output is in the build log)"
                )
        return BuildProducts(installdir=tree.installdir)

