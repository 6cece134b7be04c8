"""The starting point of the mass-rebuild benchmark: a recipe repository whose every recipe is
already published, and the commit that bumps them all.

Why seed vessel directly instead of building the first commit through the farm: the
benchmark measures a mass *rebuild*, and 835 first builds would take as long as the thing
being measured. The seed writes what the ``noop`` backend would have produced at the first
commit (the same archives: avalanche's packaging code, one package per manifest entry) into
vessel's pool, then one generation through vessel's :class:`Repository` API — so summit, on
its first start, learns every provider from the served index exactly as in production.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from daemon.avalanche.backend import DeclaredPackage
from daemon.avalanche.noop import load_manifest_packages
from daemon.avalanche.packaging import PackageMeta, write_package
from daemon.avalanche.split import PackagePlan
from daemon.package import name_provider
from daemon.summit.gitrepo import Mirror
from daemon.summit.planning.recipe import PlannedRecipe as Recipe
from daemon.vessel import store
from daemon.vessel.config import VesselConfig
from daemon.vessel.index import encode_entry, index_entry
from daemon.vessel.repository import Repository
from events.errors import CairnError
from events.sqlite import Database

GIT_ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.org",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.org",
           "HOME": "/tmp", "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
RELEASE = re.compile(r"^(release\s*:\s*)(\d+)", re.MULTILINE)


class SeedError(CairnError):
    """The corpus cannot be turned into a published repository."""


@dataclass(frozen=True)
class SeedPackage:
    name: str
    source: str
    sha256: str
    release: int
    size: int
    entry: bytes


@dataclass(frozen=True)
class Seeded:
    recipes: int
    packages: int
    generation: int
    without_manifest: tuple[str, ...]


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, env=GIT_ENV, capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise SeedError(f"git {' '.join(args)} in {repo}: {done.stderr.strip()}")
    return done.stdout.strip()


GENERATED_RECIPE = """name        : {name}
version     : 1.0.{number}
release     : 1
summary     : Generated recipe {number}
license     : MPL-2.0
description : |
    A recipe of a generated tree, for when the real corpus is not at hand.
{builddeps}build       : |
    true
"""


def generate_corpus(dest: Path, count: int, fanout: int = 4) -> Path:
    """A recipe tree of ``count`` recipes in the corpus's layout (``g/gen-0001/stone.yaml``):
    each build-depends on its parent in a tree of ``fanout`` children per recipe, so a mass
    rebuild runs in waves as the real one does. No manifests: the noop backend makes one
    package per recipe, named after it."""
    for number in range(count):
        name = f"gen-{number:04d}"
        parent = (number - 1) // fanout if number else None
        deps = f"builddeps   :\n    - name(gen-{parent:04d})\n" if parent is not None else ""
        recipe = dest / "g" / name
        recipe.mkdir(parents=True, exist_ok=True)
        (recipe / "stone.yaml").write_text(GENERATED_RECIPE.format(
            name=name, number=number, builddeps=deps), encoding="utf-8")
    return dest


def make_repo(corpus: Path, dest: Path) -> str:
    """The corpus as one commit on ``main``; returns the commit id."""
    if not corpus.is_dir():
        raise SeedError(f"corpus {corpus} is not a directory (expected serpent-recipes)")
    shutil.copytree(corpus, dest, ignore=shutil.ignore_patterns(".git"))
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "corpus at its published releases")
    return git(dest, "rev-parse", "HEAD")


def bump_all(repo: Path) -> str:
    """Commit every recipe's release + 1; returns the new commit id."""
    for stone in repo.rglob("stone.yaml"):
        text = stone.read_text(encoding="utf-8")
        stone.write_text(RELEASE.sub(lambda m: f"{m.group(1)}{int(m.group(2)) + 1}", text, 1),
                         encoding="utf-8")
    git(repo, "commit", "-qam", "bump every release")
    return git(repo, "rev-parse", "HEAD")


def declared_packages(repo: Path, recipe: Recipe, arch: str) -> tuple[DeclaredPackage, ...]:
    """What the noop backend declares for ``recipe`` (same rule as daemon.avalanche.noop)."""
    manifest = repo / recipe.path / f"manifest.{arch}.jsonc"
    if manifest.is_file():
        return load_manifest_packages(manifest)
    return (DeclaredPackage(name=recipe.name),)


def _write_archives(repo: Path, recipes: list[Recipe], arch: str, layout_pool: Path,
                    scratch: Path) -> list[SeedPackage]:
    """Write every package archive into the pool (no fsync: a benchmark's scratch state)."""
    out: list[SeedPackage] = []
    for recipe in recipes:
        meta = PackageMeta(source=recipe.name, version=recipe.version, release=recipe.release,
                           build_release=1, arch=arch)
        for d in declared_packages(repo, recipe, arch):
            provides = tuple(sorted({*d.provides, d.name, name_provider(d.name)}))
            plan = PackagePlan(d.name, recipe.summary, (), tuple(sorted(d.depends)), provides)
            manifest, path = write_package(plan, None, meta, scratch)
            data = path.read_bytes()
            sha = hashlib.sha256(data).hexdigest()
            final = layout_pool / sha[:2] / f"{sha}.tar.zst"
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, final)
            entry = encode_entry(index_entry(manifest, sha, len(data)))
            out.append(SeedPackage(manifest.name, recipe.name, sha, recipe.release, len(data),
                                   entry))
    return out


async def seed_vessel(state_dir: Path, repo: Path, commit: str, arch: str = "x86_64",
                      channel: str = "volatile") -> Seeded:
    """Publish one generation of ``channel``/``arch`` holding every recipe of ``commit``."""
    tree = Mirror.local(repo).read_tree(commit, arch)
    recipes = sorted((e.recipe for e in tree.entries.values() if e.recipe is not None),
                     key=lambda r: r.name)
    config = VesselConfig(state_dir=state_dir)
    repository = Repository.open(config)
    with tempfile.TemporaryDirectory(dir=config.layout.tmp) as scratch:
        packages = await asyncio.to_thread(_write_archives, repo, recipes, arch,
                                           config.layout.pool, Path(scratch))
    names = [p.name for p in packages]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise SeedError(f"packages declared by more than one recipe: {twice[:10]}")
    rows = [(p.sha256, p.name, p.source, p.release, 1, p.size, p.entry) for p in packages]
    async with Database.open(config.layout.db, store.MIGRATIONS) as db:
        async with db.transaction() as conn:
            await conn.executemany(
                "INSERT INTO vessel_packages (sha256, name, source, release, build_release, "
                "size, entry) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            generation = await repository.publish(
                conn, channel, arch, [(p.name, p.source, p.sha256) for p in packages],
                origin="mass_rebuild seed: every recipe at its first-commit release")
        await repository.sync_current(db)
    bare = tuple(r.name for r in recipes
                 if not (repo / r.path / f"manifest.{arch}.jsonc").is_file())
    return Seeded(len(recipes), len(packages), generation, bare)
