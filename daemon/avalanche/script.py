"""The ``script`` backend: the recipe's steps run by ``bash -e`` in the build's sandbox.

Each of ``setup``, ``build``, ``install`` and ``check`` (when present, in that order, as
boulder does) becomes a script: the recipe's ``environment``, then the step, with macros
expanded (:mod:`.macros`), starting in ``$workdir``. The scripts are kept under
``scripts/`` of the build tree so a failed build can be reproduced by hand. Paths in macros
and variables are the ones the step sees (``/build/...`` in the sandbox). The build core
makes the tree's directories before it hands the tree to the build's user.
"""

from __future__ import annotations

from .backend import BuildContext, BuildProducts
from .errors import BuildSilent, BuildTimeout, LogLimitExceeded, StepFailed
from .macros import MacroContext, expand, step_variables
from .process import run

#: The steps a build runs, in boulder's order (``workload`` only runs in profile-guided builds).
STEPS = ("setup", "build", "install", "check")
#: strerror(EAGAIN): what fork, clone and pthread_create fail with at RLIMIT_NPROC.
_EAGAIN = "Resource temporarily unavailable"


class ScriptBackend:
    name = "script"
    needs_inputs = True

    def build(self, ctx: BuildContext) -> BuildProducts:
        tree, recipe, seen = ctx.tree, ctx.recipe, ctx.sandbox.inside
        macro_ctx = MacroContext(
            name=recipe.name,
            version=recipe.version,
            release=recipe.release,
            jobs=ctx.jobs,
            arch=ctx.arch,
            installroot=str(seen(tree.installdir)),
            workdir=str(seen(tree.workdir)),
            sourcedir=str(seen(tree.sourcedir)),
            pkgdir=str(seen(tree.recipe_dir / "pkg")),
        )
        defs = macro_ctx.definitions()
        env = {**ctx.env, **step_variables(macro_ctx)}
        environment = expand(recipe.steps.environment or "", defs)
        scripts = [(s, expand(recipe.step(s) or "", defs)) for s in STEPS if recipe.step(s)]
        for step, body in scripts:
            path = tree.scriptsdir / f"{step}.sh"
            path.write_text(f'cd "$workdir"\n{environment}\n{body}\n', encoding="utf-8")
            ctx.log.phase(f"step {step}")
            try:
                status = run(
                    ["bash", "-e", str(seen(path))],
                    cwd=tree.workdir,
                    env=env,
                    sandbox=ctx.sandbox,
                    limits=ctx.limits,
                    line=ctx.log.line,
                )
            except (BuildTimeout, BuildSilent, LogLimitExceeded) as exc:
                raise type(exc)(f"step {step}: {exc}") from exc
            if status != 0:
                last = next((ln for ln in reversed(ctx.log.tail) if ln.strip()), "")
                raise StepFailed(
                    f"step {step} exited with status {status}"
                    + _process_limit_hint(ctx)
                    + (f"; last output: {last[:300]}" if last else "")
                    + " (the full output is in the build log)"
                )
        return BuildProducts(installdir=tree.installdir)


def _process_limit_hint(ctx: BuildContext) -> str:
    """Name the process limit when the step's last output says a fork or thread failed."""
    limit = ctx.sandbox.max_processes
    if limit is None or not any(_EAGAIN in line for line in ctx.log.tail):
        return ""
    return (f" after reaching the build's process limit ({limit} processes and threads; "
            "max_processes in the builder's configuration)")  # fmt: skip

