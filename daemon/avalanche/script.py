"""The ``script`` backend: the recipe's steps run by ``bash`` in the build's sandbox.

The scripts are :func:`daemon.formats.buildscript.plan`'s — the same ``cairn build-recipe
--dry-run`` prints: per build target (the 32-bit ``emul32`` one first when the recipe asks for
it), ``setup``, ``build``, ``install`` and ``check`` in boulder's order, each with the flags
and tools of the recipe's ``tuning`` and toolchain (:mod:`.toolchain`), its ``environment``
and macros expanded. They are kept under ``scripts/`` of the build tree so a failed build can
be reproduced by hand. Paths are the ones the step sees (``/build/...`` in the sandbox).

Before anything runs, every key the builder cannot honour fails the build naming it, and keys
boulder ignores are named in the log (:mod:`daemon.formats.keys`). A 32-bit pass builds in a
copy of the prepared sources, after a probe shows that the build environment can link a
32-bit program; otherwise the build fails saying so.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from daemon.formats import buildscript, keys
from daemon.formats.buildscript import BuildPaths, StepScript

from .backend import BuildContext, BuildProducts
from .errors import (
    BuildSilent,
    BuildTimeout,
    LogLimitExceeded,
    OutputLimitExceeded,
    RecipeError,
    StepFailed,
)
from .identity import hand_over
from .process import run
from .toolchain import choose

#: strerror(EAGAIN): what fork, clone and pthread_create fail with at RLIMIT_NPROC.
_EAGAIN = "Resource temporarily unavailable"
_EMUL32_PROBE = ("printf 'int main(void) { return 0; }\\n' | $CC -x c - -o "
                 "/tmp/cairn-emul32-probe")


class ScriptBackend:
    name = "script"
    needs_inputs = True

    def build(self, ctx: BuildContext) -> BuildProducts:
        review_keys(ctx)
        tree, seen = ctx.tree, ctx.sandbox.inside
        paths = BuildPaths(workdir=str(seen(tree.workdir)), installroot=str(seen(tree.installdir)),
                           sourcedir=str(seen(tree.sourcedir)),
                           pkgdir=str(seen(tree.recipe_dir / "pkg")))  # fmt: skip
        try:
            plan = buildscript.plan(ctx.recipe, arch=ctx.arch, jobs=ctx.jobs, paths=paths,
                                    toolchain=choose(ctx.recipe, ctx))  # fmt: skip
        except buildscript.MacroError as exc:
            raise RecipeError(str(exc)) from None
        for word in plan.unknown:
            ctx.log.line(f"note: {word} is not a macro; it is left as written")
        for target in plan.targets:
            workdir = Path(buildscript.target_workdir(str(tree.workdir), target, ctx.arch))
            if workdir != tree.workdir:
                # Before any step ran: the copy is of the sources the builder prepared.
                shutil.copytree(tree.workdir, workdir, symlinks=True)
                if ctx.sandbox.identity is not None:
                    hand_over(workdir, ctx.sandbox.identity)
                _probe_emul32(ctx, plan, target, workdir)
            for script in (s for s in plan.scripts if s.target == target):
                _run_step(ctx, script, workdir, native=target == ctx.arch)
        return BuildProducts(installdir=tree.installdir)


def review_keys(ctx: BuildContext) -> None:
    """Fail on a key the builder cannot honour; name the ones boulder ignores."""
    uses = keys.review(ctx.recipe)
    for use in uses:
        if use.verdict is keys.Verdict.IGNORED:
            ctx.log.line(f"ignored: {use.key}: {use.why}")
    refused = [u for u in uses if u.verdict is keys.Verdict.REFUSED]
    if refused:
        raise RecipeError("the recipe asks for what this builder cannot do: "
                          + "; ".join(f"{u.key}: {u.why}" for u in refused))


def _run_step(ctx: BuildContext, script: StepScript, workdir: Path, *, native: bool) -> None:
    prefix = "" if native else f"{script.target.split('/', 1)[0]}-"
    path = ctx.tree.scriptsdir / f"{prefix}{script.step}.sh"
    path.write_text(script.text + "\n", encoding="utf-8")
    label = script.step if native else f"{script.step} ({script.target})"
    ctx.log.phase(f"step {label}")
    try:
        status = run(["bash", str(ctx.sandbox.inside(path))], cwd=workdir, env=ctx.env,
                     sandbox=ctx.sandbox, limits=ctx.limits, line=ctx.log.line)  # fmt: skip
    except (BuildTimeout, BuildSilent, LogLimitExceeded, OutputLimitExceeded) as exc:
        raise type(exc)(f"step {label}: {exc}") from exc
    if status != 0:
        last = next((ln for ln in reversed(ctx.log.tail) if ln.strip()), "")
        raise StepFailed(
            f"step {label} exited with status {status}"
            + _process_limit_hint(ctx)
            + (f"; last output: {last[:300]}" if last else "")
            + " (the full output is in the build log)"
        )


def _probe_emul32(ctx: BuildContext, plan: buildscript.BuildPlan, target: str,
                  workdir: Path) -> None:  # fmt: skip
    """Fail unless the build environment links a 32-bit program (emul32's first need)."""
    first = next(s for s in plan.scripts if s.target == target)
    probe = ctx.tree.scriptsdir / "emul32-probe.sh"
    probe.write_text(f"{first.preamble}{_EMUL32_PROBE}\n", encoding="utf-8")
    ctx.log.phase(f"probe: can the build environment build for {target}?")
    status = run(["bash", str(ctx.sandbox.inside(probe))], cwd=workdir, env=ctx.env,
                 sandbox=ctx.sandbox, limits=ctx.limits, line=ctx.log.line)  # fmt: skip
    if status != 0:
        last = next((ln for ln in reversed(ctx.log.tail) if ln.strip()), "")
        raise RecipeError(
            f"emul32: the recipe builds a 32-bit variant, but the build environment cannot "
            f"link a 32-bit program ({last[:200] or f'status {status}'}); add a 32-bit C "
            "library and compiler support to it (Debian: gcc-multilib), or build without "
            "emul32"
        )


def _process_limit_hint(ctx: BuildContext) -> str:
    """Name the process limit when the step's last output says a fork or thread failed."""
    limit = ctx.sandbox.max_processes
    if limit is None or not any(_EAGAIN in line for line in ctx.log.tail):
        return ""
    return (f" after reaching the build's process limit ({limit} processes and threads; "
            "max_processes in the builder's configuration)")  # fmt: skip
