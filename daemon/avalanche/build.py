"""The build core: one task in, one :class:`BuildResult` out, whatever happens.

:func:`run_build` ties the pieces together: the recipe at its commit (:mod:`.checkout`), its
sources (:mod:`.sources`), build dependencies (:mod:`.deps`), the backend (:mod:`.script`,
:mod:`.noop`) and packaging (:mod:`.split`, :mod:`.packaging`). It blocks (run it in a thread:
:mod:`.runner` does) and never raises for a build problem: every failure becomes an outcome
with a reason a person can act on, so the service always has a ``build-done`` to send.

Everything a build leaves for others (packages and ``build.log``) is written to
``artefacts/<build_id>/``, which :mod:`.artefacts` serves; the work tree (see
:func:`.identity.tree_path`) is removed at the end unless ``keep_work`` is set.

The builder itself (as root, when it is root) exports the recipe, fetches and unpacks the
sources and installs the dependencies into the tree, then hands the tree to the build's user
and runs the steps in the sandbox (:mod:`.sandbox`); it packs the install tree once every
process of the build is gone, and gives the build's uid back only after the tree is removed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from daemon.formats.manifest import manifest_file, render_manifest
from daemon.package import Manifest, name_provider
from events.payloads import BuildLimits, LogOverflow, Outcome, TaskReady, UsageV3

from . import deps, environment
from .backend import BuildContext, BuildProducts, BuildTree
from .backends import get_backend
from .buildlog import BuildLog, LogCallback
from .checkout import export_recipe
from .config import AvalancheConfig, SandboxMode
from .disk import DiskMeter
from .errors import (
    BuildCancelled,
    BuildError,
    BuildTimeout,
    DependencyError,
    LogLimitExceeded,
    PackagingError,
    RecipeError,
)
from .fetch import sha256_file
from .identity import BuildIdentity, hand_over, lease, stale_trees, tree_path
from .packaging import PackageMeta, write_package
from .process import Limits
from .recipe import Recipe, load_recipe
from .sandbox import BUILD_INSIDE, Bind, Sandbox, find_bwrap, find_prlimit, probe
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
    #: The build environment it ran in (sha256 digest); ``None``: the host (not hermetic).
    environment: str | None = None
    usage: UsageV3 = field(default_factory=UsageV3)


def effective_limits(task: TaskReady, config: AvalancheConfig) -> BuildLimits:
    """The limits a build runs under: the task's (summit's configuration), and the builder's
    own where the task leaves one unset."""
    given = task.limits or BuildLimits()
    overflow = given.log_overflow if task.limits is not None and given.log_bytes is not None \
        else config.log_overflow
    return BuildLimits(
        timeout_s=given.timeout_s or config.timeout_s,
        silence_s=given.silence_s or config.silence_s,
        log_bytes=given.log_bytes or config.log_bytes,
        log_overflow=overflow,
        output_bytes=given.output_bytes or config.output_bytes)


@dataclass
class _BuiltIn:
    """Where a build runs, recorded as soon as it is known: a failed build reports it too."""

    environment: str | None = None


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
    wanted = effective_limits(task, config)
    log_full = threading.Event()
    log = BuildLog(out_dir / LOG_NAME, log_callback, cap_bytes=wanted.log_bytes,
                   on_full=(log_full.set if wanted.log_overflow is LogOverflow.FAIL
                            else None))
    timeout_s = wanted.timeout_s or config.timeout_s
    output = DiskMeter(wanted.output_bytes)
    limits = Limits(
        deadline=started + timeout_s,
        cancel=cancel_event or threading.Event(),
        kill_grace_s=config.kill_grace_s,
        silence_s=wanted.silence_s,
        log_full=log_full,
        disk=output,
    )
    log.phase(f"build {build_id}: {task.source} {task.version}-{task.release} on {config.arch}")
    outcome, reason = Outcome.SUCCESS, None
    artefacts: tuple[BuiltArtefact, ...] = ()
    manifests: tuple[Manifest, ...] = ()
    built_in = _BuiltIn()
    tree: BuildTree | None = None
    # Holds the build's uid: released on leaving the block, after the tree is removed.
    with contextlib.ExitStack() as held:
        try:
            path = tree_path(config.root, config.work_dir, _identity_wanted(config), build_id)
            path.mkdir(mode=0o700)  # a name taken by another build fails here, not later
            tree = BuildTree(path)
            output.watch(tree.root, tree.installdir)
            manifests, artefacts = _build(task, config, tree, out_dir, log, limits, held,
                                          output, built_in)
        except BuildTimeout as exc:
            outcome = Outcome.TIMEOUT
            reason = f"{exc} (limit {timeout_s:g} s): fix the hang or raise the timeout"
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
            output.sample()  # the tree at its fullest: packaged, before it is removed
            if tree is not None and not config.keep_work:
                shutil.rmtree(tree.root, ignore_errors=True)
    if outcome is not Outcome.SUCCESS:
        for artefact in artefacts:
            artefact.path.unlink(missing_ok=True)
        artefacts, manifests = (), ()
        log.phase(f"{outcome}: {reason}")
    else:
        log.phase(f"success: {len(artefacts)} package(s)")
    log.close()
    usage = UsageV3(cpu_s=round(limits.meter.cpu_s, 3), max_rss_kb=limits.meter.max_rss_kb,
                    output_bytes=output.output_bytes, log_bytes=_size(log.path),
                    disk_bytes=output.disk_bytes)
    return BuildResult(
        task_id=task.task_id,
        build_id=build_id,
        outcome=outcome,
        reason=reason,
        artefacts=artefacts,
        log_path=log.path,
        duration_s=time.monotonic() - started,
        manifests=manifests,
        usage=usage,
        environment=built_in.environment,
    )


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _tree_bytes(root: Path) -> int:
    """The bytes of the regular files under ``root`` (symlinks not followed)."""
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                info = os.lstat(os.path.join(dirpath, name))
                if stat.S_ISREG(info.st_mode):
                    total += info.st_size
    return total


def remove_stale_trees(config: AvalancheConfig) -> int:
    """Remove the trees an earlier run of this builder left (it was killed mid-build), and
    those of builders whose root is gone (:func:`.identity.stale_trees`); call before the
    builder starts building. Returns how many trees were removed."""
    stale = stale_trees(config.root, config.work_dir, _identity_wanted(config))
    for path in stale:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return sum(1 for path in stale if not path.name.endswith(".owner"))


def _checkpoint(limits: Limits) -> None:
    if limits.cancel.is_set():
        raise BuildCancelled("the build was cancelled")
    if limits.log_full.is_set():
        raise LogLimitExceeded("the build log passed its size cap")
    if time.monotonic() >= limits.deadline:
        raise BuildTimeout("the build outlived its time limit")


def _identity_wanted(config: AvalancheConfig) -> BuildIdentity | None:
    """A representative build identity when builds must switch user (the builder is root
    and sandboxes), else ``None``: the work root must be reachable by every uid of the range,
    and each is as good as another for checking that."""
    if config.sandbox is SandboxMode.NONE or os.geteuid() != 0:
        return None
    return BuildIdentity(config.build_uid, config.build_uid)


def _sandbox(
    config: AvalancheConfig, tree: BuildTree, log: BuildLog, held: contextlib.ExitStack,
    prepared: environment.PreparedRoot | None = None, *, network: bool = False,
) -> Sandbox:
    """The sandbox of this build (leasing its uid into ``held``), checked by a probe; its
    root is the build environment's root when there is one, else the host's ``/``."""
    if config.sandbox is SandboxMode.NONE and prepared is not None:
        raise BuildError(
            "a build environment needs the sandbox to show its root as /, but this builder "
            "has sandbox = \"none\"", outcome=Outcome.INFRASTRUCTURE)
    if config.sandbox is SandboxMode.NONE:
        who = "root" if os.geteuid() == 0 else "the builder's user"
        log.line(f"WARNING: sandbox = none: the build runs unsandboxed as {who}, with network "
                 "access and write access to everything that user can write")  # fmt: skip
        return Sandbox(bwrap=None)
    bwrap = find_bwrap()
    if bwrap is None:
        raise BuildError(
            "this builder sandboxes every build but bubblewrap (bwrap) is not installed: "
            "install it (apt-get install bubblewrap), or set sandbox = \"none\" for a "
            "builder that only ever builds trusted recipes",
            outcome=Outcome.INFRASTRUCTURE,
        )
    identity = None
    if _identity_wanted(config) is not None:
        identity = held.enter_context(
            lease(config.build_uid, config.build_uids, config.uid_lock_dir))
    if identity is not None:
        os.chown(tree.root, identity.uid, identity.gid)  # for the probe to bind it
    sandbox = Sandbox(
        bwrap=bwrap,
        binds=(Bind(tree.root, BUILD_INSIDE),),
        root=prepared.path if prepared is not None else Path("/"),
        hidden=tuple(p.resolve() for p in (*config.hidden, config.root, tree.root.parent,
                                           config.mirror_root)),
        identity=identity,
        max_processes=config.max_processes,
        prlimit=find_prlimit(),
        network=network,
    )
    probe(sandbox, _base_env(tree, sandbox, prepared is not None))
    who = f"uid {identity.uid}" if identity is not None else "the builder's user"
    view = (f"root {prepared.environment.manifest.name} sha256:{prepared.environment.digest}"
            if prepared is not None else "root: the host's system (not hermetic)")
    net = "the host's network (networking: true)" if network else "no network"
    log.line(f"sandbox: bubblewrap as {who}, no capabilities, tree at {BUILD_INSIDE}, "
             f"at most {config.max_processes} processes, {net}, {view}")  # fmt: skip
    return sandbox


def _check_networking(config: AvalancheConfig, recipe: Recipe) -> None:
    """A recipe that needs the network builds only on a builder that gives it."""
    if recipe.networking and not config.allow_networking:
        raise RecipeError(
            "the recipe sets networking: true, but this builder gives builds no network "
            "(allow_networking = false in its configuration): build it on a builder that "
            "allows it, or vendor what the build fetches into the recipe's upstreams"
        )


def _check_identity(task: TaskReady, recipe: Recipe) -> None:
    if recipe.name != task.source or recipe.release != task.release:
        raise BuildError(
            f"the task asks for {task.source} release {task.release} but {task.recipe_path} "
            f"at {task.commit[:12]} is {recipe.name} release {recipe.release}; re-plan the task"
        )


def _base_env(tree: BuildTree, sandbox: Sandbox, in_environment: bool = False
              ) -> dict[str, str]:
    home = tree.root / "home"
    home.mkdir(parents=True, exist_ok=True)
    host_path = os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")
    return {
        "PATH": environment.ENV_PATH if in_environment else host_path,
        "HOME": str(sandbox.inside(home)),
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
    held: contextlib.ExitStack,
    output: DiskMeter,
    built_in: _BuiltIn,
) -> tuple[tuple[Manifest, ...], tuple[BuiltArtefact, ...]]:
    """``built_in`` learns the environment the build runs in as soon as it is known."""
    log.phase(f"recipe {task.recipe_path} at {task.commit} from {task.repository_url}")
    stone = export_recipe(
        config.mirror_root, task.repository_url, task.commit, task.recipe_path, tree.recipe_dir
    )
    backend = get_backend(config.backend)
    recipe = load_recipe(stone, origin=f"{task.repository}:{task.recipe_path}/stone.yaml")
    _check_identity(task, recipe)
    if config.keep_work:
        log.phase(f"build tree {tree.root} (kept: keep_work)")
    prepared = None
    if backend.needs_inputs:
        _check_networking(config, recipe)
    if backend.needs_inputs and (digest := environment.wanted(task, config)) is not None:
        prepared = environment.prepare(task, config, digest, recipe, tree, log, held)
        built_in.environment = prepared.environment.digest
    sandbox = (_sandbox(config, tree, log, held, prepared, network=recipe.networking)
               if backend.needs_inputs else Sandbox(bwrap=None))
    env = _base_env(tree, sandbox, prepared is not None)
    if backend.needs_inputs:
        _checkpoint(limits)
        log.phase(f"sources: {len(recipe.upstreams)} upstream(s)")
        prepare_sources(recipe.upstreams, tree.recipe_dir, tree.workdir, tree.sourcedir,
                        config.cache_dir, timeout=config.fetch_timeout_s, log=log.line)  # fmt: skip
        _checkpoint(limits)
        if prepared is None:
            env = _install_deps(task, config, recipe, tree, log, env, sandbox)
        for d in (tree.workdir, tree.installdir, tree.scriptsdir):
            d.mkdir(parents=True, exist_ok=True)
        if sandbox.identity is not None:
            hand_over(tree.root, sandbox.identity)
    _checkpoint(limits)
    log.phase(f"backend {backend.name}" + (" in bubblewrap" if sandbox.bwrap else ""))
    ctx = BuildContext(recipe=recipe, tree=tree, arch=config.arch, jobs=config.jobs, env=env,
                       sandbox=sandbox, limits=limits, log=log)  # fmt: skip
    products = backend.build(ctx)
    _checkpoint(limits)
    if products.installdir is not None:
        output.check(_tree_bytes(products.installdir), "the install tree's files")
    built = _package(task, config, recipe, products, out_dir, log, built_in.environment)
    output.check(sum(a.size for a in built[1]), "the packages")
    return built


def _install_deps(
    task: TaskReady,
    config: AvalancheConfig,
    recipe: Recipe,
    tree: BuildTree,
    log: BuildLog,
    env: dict[str, str],
    sandbox: Sandbox,
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
    index = deps.load_index(task.index_url, timeout=config.fetch_timeout_s,
                             cache_dir=config.cache_dir)
    resolution = deps.resolve(index, wanted, config.arch)
    deps.install(resolution, task.index_url, tree.depsdir, config.cache_dir,
                 timeout=config.fetch_timeout_s, log=log.line)  # fmt: skip
    return deps.environment(sandbox.inside(tree.depsdir), env)


def _package(
    task: TaskReady,
    config: AvalancheConfig,
    recipe: Recipe,
    products: BuildProducts,
    out_dir: Path,
    log: BuildLog,
    built_in: str | None,
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
                       build_release=task.build_release, arch=config.arch,
                       environment=built_in)  # fmt: skip
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
    (out_dir / manifest_file(config.arch)).write_text(report, encoding="utf-8")
    return tuple(manifests), tuple(artefacts)
