"""The build core: one task in, one :class:`BuildResult` out, whatever happens.

:func:`run_build` ties the pieces together: the recipe at its commit (:mod:`.checkout`), its
sources (:mod:`.sources`), build dependencies (:mod:`.deps`), the backend (:mod:`.script`,
:mod:`.noop`) and packaging (:mod:`.split`, :mod:`.packaging`). It blocks (run it in a thread:
:mod:`.runner` does) and never raises for a build problem: every failure becomes an outcome
with a reason a person can act on, so the service always has a ``build-done`` to send.

Everything a build leaves for others (packages and ``build.log``) is written to
``artefacts/<build_id>/``, which :mod:`.artefacts` serves; the work tree under
``builds/<build_id>/`` is removed at the end unless ``keep_work`` is set.
"""

from __future__ import annotations

import os
import secrets
import shutil
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from daemon.package import Manifest, name_provider
from events.payloads import Outcome, TaskReady

from . import deps
from .backend import BuildContext, BuildProducts, BuildTree
from .backends import get_backend
from .buildlog import BuildLog, LogCallback
from .checkout import export_recipe
from .config import AvalancheConfig, SandboxMode
from .errors import BuildCancelled, BuildError, BuildTimeout, DependencyError, PackagingError
from .fetch import sha256_file
from .noop import render_manifest
from .packaging import PackageMeta, write_package
from .process import Limits, Sandbox, find_bwrap
from .recipe import Recipe, load_recipe
from .sources import prepare_sources
from .split import PackagePlan, plan_packages

LOG_NAME = "build.log"


@dataclass(frozen=True)
class BuiltArtefact:
    """One package file a build produced, ready for an ``Artefact`` payload."""

    name: str
    filename: str
    path: Path
    sha256: str
    size: int


@dataclass(frozen=True)
class BuildResult:
    task_id: int
    build_id: str
    outcome: Outcome
    reason: str | None
    artefacts: tuple[BuiltArtefact, ...]
    log_path: Path
    duration_s: float
    manifests: tuple[Manifest, ...] = ()


def new_build_id(task_id: int) -> str:
    """``<task>-<random>``: unique per attempt, and its task is visible in every path."""
    return f"{task_id}-{secrets.token_hex(4)}"


def run_build(
    task: TaskReady,
    config: AvalancheConfig,
    log_callback: LogCallback | None = None,
    cancel_event: threading.Event | None = None,
    *,
    build_id: str | None = None,
) -> BuildResult:
    """Build ``task``; see the module docstring. Set ``cancel_event`` to stop it."""
    started = time.monotonic()
    build_id = build_id or new_build_id(task.task_id)
    out_dir = config.artefacts_dir / build_id
    log = BuildLog(out_dir / LOG_NAME, log_callback)
    tree = BuildTree(config.builds_dir / build_id)
    limits = Limits(
        deadline=started + config.timeout_s,
        cancel=cancel_event or threading.Event(),
        kill_grace_s=config.kill_grace_s,
    )
    log.phase(f"build {build_id}: {task.source} {task.version}-{task.release} on {config.arch}")
    outcome, reason = Outcome.SUCCESS, None
    artefacts: tuple[BuiltArtefact, ...] = ()
    manifests: tuple[Manifest, ...] = ()
    try:
        manifests, artefacts = _build(task, config, tree, out_dir, log, limits)
    except BuildTimeout as exc:
        outcome = Outcome.TIMEOUT
        reason = f"{exc} (limit {config.timeout_s:g} s): fix the hang or raise the timeout"
    except BuildError as exc:
        outcome, reason = exc.outcome, str(exc)
    except OSError as exc:
        outcome, reason = Outcome.INFRASTRUCTURE, f"builder I/O error: {exc}"
    except Exception as exc:  # the service must always get an outcome to report
        outcome = Outcome.INFRASTRUCTURE
        reason = f"internal error in the builder: {type(exc).__name__}: {exc}"
        for line in traceback.format_exc().splitlines():
            log.line(line)
    finally:
        if not config.keep_work:
            shutil.rmtree(tree.root, ignore_errors=True)
    if outcome is not Outcome.SUCCESS:
        for artefact in artefacts:
            artefact.path.unlink(missing_ok=True)
        artefacts, manifests = (), ()
        log.phase(f"{outcome}: {reason}")
    else:
        log.phase(f"success: {len(artefacts)} package(s)")
    log.close()
    return BuildResult(
        task_id=task.task_id,
        build_id=build_id,
        outcome=outcome,
        reason=reason,
        artefacts=artefacts,
        log_path=log.path,
        duration_s=time.monotonic() - started,
        manifests=manifests,
    )


def _checkpoint(limits: Limits) -> None:
    if limits.cancel.is_set():
        raise BuildCancelled("the build was cancelled")
    if time.monotonic() >= limits.deadline:
        raise BuildTimeout("the build outlived its time limit")


def _sandbox(config: AvalancheConfig, tree: BuildTree, log: BuildLog) -> Sandbox:
    bwrap = None if config.sandbox is SandboxMode.NONE else find_bwrap()
    if bwrap is None and config.sandbox is SandboxMode.BWRAP:
        raise BuildError(
            "the builder requires bubblewrap (sandbox = bwrap) but bwrap is not installed",
            outcome=Outcome.INFRASTRUCTURE,
        )
    if bwrap is None:
        log.line("WARNING: bubblewrap is not used: the build runs unsandboxed, with network "
                 "access and write access to everything this builder's user can write")  # fmt: skip
    return Sandbox(bwrap=bwrap, writable=(tree.root,))


def _check_identity(task: TaskReady, recipe: Recipe) -> None:
    if recipe.name != task.source or recipe.release != task.release:
        raise BuildError(
            f"the task asks for {task.source} release {task.release} but {task.recipe_path} "
            f"at {task.commit[:12]} is {recipe.name} release {recipe.release}; re-plan the task"
        )


def _base_env(tree: BuildTree) -> dict[str, str]:
    home = tree.root / "home"
    home.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TERM": "dumb",
        "SOURCE_DATE_EPOCH": "0",
    }


def _build(
    task: TaskReady,
    config: AvalancheConfig,
    tree: BuildTree,
    out_dir: Path,
    log: BuildLog,
    limits: Limits,
) -> tuple[tuple[Manifest, ...], tuple[BuiltArtefact, ...]]:
    log.phase(f"recipe {task.recipe_path} at {task.commit} from {task.repository_url}")
    stone = export_recipe(
        config.cache_dir, task.repository_url, task.commit, task.recipe_path, tree.recipe_dir
    )
    backend = get_backend(config.backend)
    recipe = load_recipe(stone, origin=f"{task.repository}:{task.recipe_path}",
                         sources=backend.needs_inputs)
    _check_identity(task, recipe)
    sandbox = _sandbox(config, tree, log) if backend.needs_inputs else Sandbox(bwrap=None)
    env = _base_env(tree)
    if backend.needs_inputs:
        _checkpoint(limits)
        log.phase(f"sources: {len(recipe.upstreams)} upstream(s)")
        prepare_sources(recipe.upstreams, tree.recipe_dir, tree.workdir, tree.sourcedir,
                        config.cache_dir, timeout=config.fetch_timeout_s, log=log.line)  # fmt: skip
        _checkpoint(limits)
        env = _install_deps(task, config, recipe, tree, log, env)
    _checkpoint(limits)
    log.phase(f"backend {backend.name}" + (" in bubblewrap" if sandbox.bwrap else ""))
    ctx = BuildContext(recipe=recipe, tree=tree, arch=config.arch, jobs=config.jobs, env=env,
                       sandbox=sandbox, limits=limits, log=log)  # fmt: skip
    products = backend.build(ctx)
    _checkpoint(limits)
    return _package(task, config, recipe, products, out_dir, log)


def _install_deps(
    task: TaskReady,
    config: AvalancheConfig,
    recipe: Recipe,
    tree: BuildTree,
    log: BuildLog,
    env: dict[str, str],
) -> dict[str, str]:
    wanted = [*recipe.builddeps, *recipe.checkdeps]
    if not wanted:
        return env
    if not task.index_url:
        raise DependencyError(
            f"the recipe needs {', '.join(wanted)} but the task names no repository index "
            "(index_url) to fetch them from"
        )
    log.phase(f"build dependencies: {', '.join(wanted)} from {task.index_url}")
    index = deps.load_index(task.index_url, timeout=config.fetch_timeout_s)
    resolution = deps.resolve(index, wanted, config.arch)
    deps.install(resolution, task.index_url, tree.depsdir, config.cache_dir,
                 timeout=config.fetch_timeout_s, log=log.line)  # fmt: skip
    return deps.environment(tree.depsdir, env)


def _package(
    task: TaskReady,
    config: AvalancheConfig,
    recipe: Recipe,
    products: BuildProducts,
    out_dir: Path,
    log: BuildLog,
) -> tuple[tuple[Manifest, ...], tuple[BuiltArtefact, ...]]:
    plans: list[PackagePlan] = []
    if products.installdir is not None:
        plans.extend(plan_packages(recipe, products.installdir))
    for d in products.declared:
        provides = tuple(sorted({*d.provides, d.name, name_provider(d.name)}))
        plans.append(PackagePlan(d.name, d.summary, (), tuple(sorted(d.depends)), provides))
    if not plans:
        raise PackagingError("the build installed nothing into $installdir; check the install step")
    meta = PackageMeta(source=recipe.name, version=recipe.version, release=recipe.release,
                       build_release=task.build_release, arch=config.arch)  # fmt: skip
    manifests: list[Manifest] = []
    artefacts: list[BuiltArtefact] = []
    for plan in plans:
        manifest, path = write_package(plan, products.installdir, meta, out_dir)
        size = path.stat().st_size
        artefacts.append(BuiltArtefact(plan.name, path.name, path, sha256_file(path), size))
        manifests.append(manifest)
        log.phase(f"package {path.name}: {len(manifest.files)} entries, {size} bytes, "
                  f"provides {', '.join(manifest.provides)}")  # fmt: skip
    report = render_manifest(recipe.name, recipe.version, recipe.release,
                             [*recipe.builddeps, *recipe.checkdeps], manifests)  # fmt: skip
    (out_dir / f"manifest.{config.arch}.jsonc").write_text(report, encoding="utf-8")
    return tuple(manifests), tuple(artefacts)
