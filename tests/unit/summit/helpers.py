"""Small recipe trees for planner tests, built through the real parsers."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from daemon.summit.planning.tree import RecipeEntry, RecipeTree, load_entry

ARCH = "x86_64"


def stone(name: str, release: int, deps: Sequence[str] = (), version: str = "1.0") -> bytes:
    lines = [f"name: {name}", f"version: '{version}'", f"release: {release}",
             "summary: test", "license: [MIT]"]
    if deps:
        lines.append("builddeps:")
        lines += [f"    - {d}" for d in deps]
    lines.append("build: |\n    make")
    return ("\n".join(lines) + "\n").encode()


def manifest(name: str, provides: Iterable[str] = ()) -> bytes:
    doc = {"manifest-version": "0.2",
           "packages": {name: {"name": name, "provides": list(provides), "depends": [],
                               "build-depends": [], "files": []}}}
    return b"/* report */\n" + json.dumps(doc).encode()


def entry(name: str, release: int, deps: Sequence[str] = (), provides: Iterable[str] = (),
          with_manifest: bool = True) -> RecipeEntry:
    data = manifest(name, provides) if with_manifest else None
    return load_entry(f"r/{name}", stone(name, release, deps), data, ARCH)


def tree(commit: str, *entries: RecipeEntry) -> RecipeTree:
    return RecipeTree(commit=commit, entries={e.path: e for e in entries})


def commit_id(n: int) -> str:
    return f"{n:040x}"
