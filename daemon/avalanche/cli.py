"""``cairn build-recipe``: build one recipe locally with avalanche's core, no broker.

For recipe authors and operators: the same checkout, sources, dependencies, sandbox and
packaging as a builder, with the log on stdout (control characters escaped) and the packages
left in ``--root``. The recipe is read (and its names checked) before anything is built.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pygit2

from daemon.terminal import printable
from events.payloads import Outcome, TaskReady

from .build import run_build
from .checkout import export_recipe
from .config import AvalancheConfig, SandboxMode
from .errors import RecipeError
from .recipe import load_recipe


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("build-recipe", help="build one recipe locally (no broker)")
    p.add_argument("repository", help="recipe repository (path or URL)")
    p.add_argument("recipe", help="recipe directory or stone.yaml inside the repository")
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
    p.set_defaults(func=_build_recipe)


def _build_recipe(args: argparse.Namespace) -> int:
    local = Path(args.repository)
    url = str(local.resolve()) if local.exists() else args.repository
    commit = args.commit
    if commit is None:
        try:
            commit = str(pygit2.Repository(url).head.target)
        except pygit2.GitError as exc:
            raise RecipeError(f"{url} is not a local repository; pass --commit") from exc
    config = AvalancheConfig(root=args.root.resolve(), backend=args.backend,
                             sandbox=SandboxMode(args.sandbox), timeout_s=args.timeout,
                             keep_work=args.keep_work, environment=args.environment,
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


def _show(line: str) -> None:
    """Print a line of the build (its text is the recipe's: escaped for the terminal)."""
    print(printable(line), flush=True)
