"""``cairn build-recipe``: build one recipe locally with avalanche's core, no broker.

For recipe authors and operators: the same checkout, sources, dependencies, sandbox and
packaging as a builder, with the log on stdout (control characters escaped) and the packages
left in ``--root``. The recipe is read (and its names checked) before anything is built.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import pygit2

from daemon.formats.buildscript import MacroError
from daemon.formats.stone import STONE_FILE
from daemon.terminal import printable
from events.payloads import Outcome, TaskReady

from .build import run_build
from .checkout import export_recipe
from .config import AvalancheConfig, SandboxMode
from .dryrun import dry_run
from .errors import RecipeError
from .recipe import load_recipe


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("build-recipe", help="build one recipe locally (no broker)")
    p.add_argument("repository", help="recipe repository (path or URL); without RECIPE, a "
                   "recipe directory in a local checkout (with --dry-run: any directory or "
                   "stone.yaml on disk)")
    p.add_argument("recipe", nargs="?",
                   help="recipe directory or stone.yaml inside the repository")
    p.add_argument("--commit", help="commit to build (default: HEAD of a local repository)")
    p.add_argument("--index-url", help="repository index for build dependencies")
    p.add_argument("--root", type=Path, default=Path(".cairn-avalanche"), help="state directory")
    p.add_argument("--backend", default="script", choices=("script", "noop"))
    p.add_argument("--sandbox", default="bwrap", choices=[m.value for m in SandboxMode],
                   help="bwrap (default: refuse to build unsandboxed) or none (trusted recipes)")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds")
    p.add_argument("--keep-work", action="store_true", help="keep the build tree")
    p.add_argument("--environment", metavar="DIGEST",
                   help="build in this build environment (default: the host's system)")
    p.add_argument("--environment-url", metavar="URL", help="vessel to pull it from")
    p.add_argument("--environment-key", type=Path, metavar="FILE",
                   help="vessel's minisign public key")
    p.add_argument("--allow-networking", action="store_true",
                   help="give a recipe with networking: true the network in its sandbox")
    p.add_argument("--dry-run", action="store_true",
                   help="print the expanded script of every step and build nothing")
    p.add_argument("--toolchain", choices=("llvm", "gnu"),
                   help="with --dry-run: show the scripts for this toolchain")
    p.add_argument("--arch", default="x86_64", help="with --dry-run: the builder's arch")
    p.set_defaults(func=_build_recipe)


def _build_recipe(args: argparse.Namespace) -> int:
    if args.dry_run:
        return _dry_run(args)
    if args.recipe is None:
        args.repository, args.recipe = _split_recipe_path(Path(args.repository))
    local = Path(args.repository)
    url = str(local.resolve()) if local.exists() else args.repository
    commit = args.commit or _head(url)
    config = AvalancheConfig(root=args.root.resolve(), backend=args.backend,
                             sandbox=SandboxMode(args.sandbox), timeout_s=args.timeout,
                             keep_work=args.keep_work, environment=args.environment,
                             allow_networking=args.allow_networking,
                             environment_url=args.environment_url,
                             environment_key=args.environment_key)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        stone = export_recipe(config.cache_dir, url, commit, args.recipe, Path(tmp) / "r")
        recipe = load_recipe(stone)
    task = TaskReady(task_id=1, attempt=1, builder="local", source=recipe.name,
                     version=recipe.version,
                     release=recipe.release, arch=config.arch, repository="local",
                     repository_url=url, commit=commit, recipe_path=args.recipe,
                     index_url=args.index_url)  # fmt: skip
    result = run_build(task, config, _show)
    for artefact in result.artefacts:
        _show(f"{artefact.path}  sha256={artefact.sha256}  size={artefact.size}")
    return 0 if result.outcome is Outcome.SUCCESS else 1


def _dry_run(args: argparse.Namespace) -> int:
    """Print what a build would run; status 1 when it would be refused."""
    if args.recipe is None:
        path = Path(args.repository)
        recipe = load_recipe(path / STONE_FILE if path.is_dir() else path)
    else:
        local = Path(args.repository)
        url = str(local.resolve()) if local.exists() else args.repository
        commit = args.commit or _head(url)
        with tempfile.TemporaryDirectory() as tmp:
            cache = args.root.resolve() / "cache"
            recipe = load_recipe(export_recipe(cache, url, commit, args.recipe, Path(tmp) / "r"))
    try:
        done = dry_run(recipe, arch=args.arch, jobs=os.cpu_count() or 1,
                       toolchain=args.toolchain)  # fmt: skip
    except MacroError as exc:
        raise RecipeError(f"{recipe.name}: {exc}") from None
    for line in done.text.splitlines():
        _show(line)
    for use in done.refused:
        _show(f"refused: {use.key}: {use.why}")
    return 0 if not done.refused else 1


def _split_recipe_path(path: Path) -> tuple[str, str]:
    """A recipe directory inside a local git checkout: (the checkout, the recipe in it)."""
    found = pygit2.discover_repository(str(path.resolve()))
    workdir = pygit2.Repository(found).workdir if found else None
    if workdir is None:
        raise RecipeError(f"{path} is not inside a git checkout: name the repository and the "
                          "recipe in it (REPOSITORY RECIPE)")  # fmt: skip
    root = Path(workdir).resolve()
    return str(root), str(path.resolve().relative_to(root))


def _head(url: str) -> str:
    try:
        return str(pygit2.Repository(url).head.target)
    except pygit2.GitError as exc:
        raise RecipeError(f"{url} is not a local repository; pass --commit") from exc


def _show(line: str) -> None:
    """Print a line of the build (its text is the recipe's: escaped for the terminal)."""
    print(printable(line), flush=True)
