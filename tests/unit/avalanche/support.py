"""Helpers for avalanche's tests: real git repositories, tasks, indexes served over HTTP."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import msgspec
from aiohttp import web

from daemon.avalanche.build import BuildResult
from daemon.avalanche.config import AvalancheConfig, SandboxMode
from daemon.package import Index, IndexEntry
from events.payloads import TaskReady

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "recipes"


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=test", "-c", "user.email=test@example.invalid",
         *args],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return result.stdout.strip()


def make_repo(path: Path, source: Path = EXAMPLES) -> tuple[Path, str]:
    """A git repository holding a copy of ``source``; returns it and its HEAD commit."""
    shutil.copytree(source, path)
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "recipes")
    return path, git(path, "rev-parse", "HEAD")


def add_recipe(repo: Path, name: str, stone: str, files: dict[str, bytes] | None = None) -> str:
    """Commit a recipe directory ``name`` with ``stone`` and extra files; return the commit."""
    d = repo / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "stone.yaml").write_text(stone)
    for rel, data in (files or {}).items():
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_bytes(data)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", f"add {name}")
    return git(repo, "rev-parse", "HEAD")


_task_ids = iter(range(1, 1_000_000))


def task_for(
    repo: Path, commit: str, name: str, *, index_url: str | None = None, release: int = 1
) -> TaskReady:
    return TaskReady(
        task_id=next(_task_ids), attempt=1, builder="local", source=name, version="1.0.0",
        release=release, arch="x86_64",
        repository="examples", repository_url=str(repo), commit=commit,
        recipe_path=f"{name}/stone.yaml", index_url=index_url,
    )  # fmt: skip


def config(root: Path, **overrides: object) -> AvalancheConfig:
    values: dict[str, object] = {"root": root, "jobs": 2, "timeout_s": 120.0,
                                 "sandbox": SandboxMode.BWRAP}  # fmt: skip
    values.update(overrides)
    return AvalancheConfig(**values)  # type: ignore[arg-type]


def write_index(repo_dir: Path, results: Sequence[BuildResult]) -> Path:
    """An index.json (daemon.package.Index) in ``repo_dir`` with every package of ``results``
    copied to ``repo_dir/pool/``; ``uri`` entries are relative, as vessel writes them."""
    pool = repo_dir / "pool"
    pool.mkdir(parents=True, exist_ok=True)
    entries = []
    for result in results:
        for manifest, artefact in zip(result.manifests, result.artefacts, strict=True):
            shutil.copyfile(artefact.path, pool / artefact.filename)
            entries.append(IndexEntry(
                name=manifest.name, version=manifest.version, release=manifest.release,
                build_release=manifest.build_release, arch=manifest.arch, source=manifest.source,
                summary=manifest.summary, depends=manifest.depends, provides=manifest.provides,
                uri=f"pool/{artefact.filename}", sha256=artefact.sha256, size=artefact.size,
            ))  # fmt: skip
    index = Index(channel="volatile", arch="x86_64", generation=len(results) + 1,
                  created="2024-01-01T00:00:00Z", packages=entries)  # fmt: skip
    path = repo_dir / "index.json"
    path.write_bytes(msgspec.json.encode(index))
    return path


@asynccontextmanager
async def serve_dir(directory: Path) -> AsyncIterator[str]:
    """Serve ``directory`` over real HTTP on 127.0.0.1 (ephemeral port); yields the base URL."""
    app = web.Application()
    directory.mkdir(parents=True, exist_ok=True)
    app.router.add_static("/", directory)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def untar(archive: Path, dest: Path) -> None:
    """Unpack with GNU tar, as a person would."""
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "--zstd", "-xf", str(archive), "-C", str(dest)], check=True)
