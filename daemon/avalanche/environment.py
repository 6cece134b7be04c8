"""A build in a build environment: its root is the environment plus its dependencies.

When the builder's configuration names an environment (:attr:`AvalancheConfig.environment`),
:func:`prepare` holds it in use for the build (pulled from vessel by digest and verified the
first time: :mod:`daemon.buildenv.builder`), resolves the recipe's build dependencies against
the channel's index and the environment's provides (never the host: what neither provides is
unresolvable, named), fetches them, and assembles the build's root as a hard-link farm beside
the build tree. The sandbox then shows that root as ``/``: the host's own ``/usr``, ``/etc``
and home are not in it, and the dependencies sit in ``/usr`` where the tools find them
without search paths.

The root is beside the tree, never inside it: the tree is handed to the build's user, and the
root's files are the cache's own inodes.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from daemon.buildenv import builder
from daemon.buildenv.cache import CachedEnvironment
from daemon.buildenv.errors import BuildEnvError
from daemon.package import Index
from events.payloads import Outcome, TaskReady

from . import deps
from .backend import BuildTree
from .buildlog import BuildLog
from .config import AvalancheConfig
from .errors import BuildError, DependencyError
from .recipe import Recipe

#: ``PATH`` inside an environment: the root's own directories only.
ENV_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"


@dataclass(frozen=True)
class PreparedRoot:
    path: Path
    environment: CachedEnvironment


def root_path(tree: BuildTree) -> Path:
    """Where the root of the build whose tree is ``tree`` goes (stale ones are cleaned with
    the trees: the name starts like the tree's)."""
    return tree.root.with_name(tree.root.name + ".root")


def wanted(task: TaskReady, config: AvalancheConfig) -> str | None:
    """The environment a build runs in: the one its task names (the repository's, chosen by
    summit's operator), else the builder's configured one; ``None``: the host's system,
    which only a builder that allows host builds accepts (:class:`BuildError` otherwise)."""
    digest = task.environment or config.environment
    if digest is None and not config.host_builds:
        raise BuildError(
            "the task names no build environment and this builder does not build on its "
            "host's system (not hermetic): name an environment for the repository in summit's "
            "configuration, set [avalanche] environment, or set environment = \"host\" to "
            "allow builds that are not hermetic", outcome=Outcome.INFRASTRUCTURE)
    return digest


def prepare(task: TaskReady, config: AvalancheConfig, digest: str, recipe: Recipe,
            tree: BuildTree, log: BuildLog, held: contextlib.ExitStack) -> PreparedRoot:
    """The environment ``digest`` in use (for as long as ``held``) and the build's root
    (removed when ``held`` closes); raises :class:`BuildError` with the outcome a failure
    deserves."""
    try:
        chosen = builder.setting(digest, config.environment_url,
                                 config.environment_key, keep=config.environments_kept,
                                 timeout=config.fetch_timeout_s)
        log.phase(f"build environment sha256:{chosen.digest}")
        env = held.enter_context(builder.open_environment(
            chosen, config.cache_dir / "environments", log.line))
    except BuildEnvError as exc:
        raise BuildError(f"build environment: {exc}", outcome=Outcome.INFRASTRUCTURE) from exc
    packages = _dependencies(task, config, recipe, env, log)
    try:
        path = held.enter_context(builder.build_root(
            env, packages, config.cache_dir / "unpacked", root_path(tree), log.line))
    except BuildEnvError as exc:
        raise DependencyError(f"cannot assemble the build root: {exc}") from exc
    return PreparedRoot(path, env)


def _dependencies(task: TaskReady, config: AvalancheConfig, recipe: Recipe,
                  env: CachedEnvironment, log: BuildLog) -> list[tuple[Path, str]]:
    wanted = [*recipe.builddeps, *recipe.checkdeps]
    if not wanted:
        return []
    provided = frozenset(env.manifest.provides)
    if task.index_url:
        log.phase(f"build dependencies: {', '.join(wanted)} from {task.index_url} and the "
                  f"environment")
        index = deps.load_index(task.index_url, timeout=config.fetch_timeout_s,
                                cache_dir=config.cache_dir)
    else:
        log.phase(f"build dependencies: {', '.join(wanted)} from the environment")
        index = Index(channel="none", arch=config.arch, generation=0, created="", packages=[])
    resolution = deps.resolve(index, wanted, config.arch, provided)
    if not resolution.packages:
        for dep in resolution.from_environment:
            log.line(f"dependency {dep} is provided by the build environment")
        return []
    fetched = deps.fetch(resolution, task.index_url or "", config.cache_dir,
                         timeout=config.fetch_timeout_s, log=log.line)
    for entry, _path, hit in fetched:
        log.line(f"dependency {deps.describe(entry)} in the root{' (cached)' if hit else ''}")
    return [(path, entry.sha256) for entry, path, _hit in fetched]
