"""Acceptance of ``cairn plan`` on the real Serpent OS corpus (skipped when it is absent).

The checks resolve providers on their own (plain dicts and an independent SCC routine), not
through summit's planner code, and run the CLI as a real subprocess.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / ".." / "shared" / "corpora" / "serpent-recipes"
ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
       "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org", "HOME": "/tmp"}
RELEASE = re.compile(r"^(release\s*:\s*)(\d+)", re.MULTILINE)

pytestmark = [pytest.mark.corpus, pytest.mark.slow]


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, env=ENV, check=True, capture_output=True)


def cairn_plan(*args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "daemon.cli", "plan", *args, "--json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=100)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def bump(stone: Path) -> None:
    text = stone.read_text()
    stone.write_text(RELEASE.sub(lambda m: f"{m.group(1)}{int(m.group(2)) + 1}", text, count=1))


@pytest.fixture(scope="module")
def corpus_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"the recipe corpus is absent ({CORPUS})")
    repo = tmp_path_factory.mktemp("corpus") / "recipes"
    shutil.copytree(CORPUS, repo)
    for path in repo.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "corpus")
    for stone in repo.rglob("stone.yaml"):
        bump(stone)
    git(repo, "commit", "-qam", "raise every release by one")
    return repo


def independent_graph(repo: Path) -> tuple[set[str], dict[str, set[str]]]:
    """Sources and source → provider-source edges (builddeps + checkdeps), resolved here."""
    provider: dict[str, set[str]] = defaultdict(set)
    recipes: dict[str, dict[str, Any]] = {}
    for stone in repo.rglob("stone.yaml"):
        doc = yaml.safe_load(stone.read_text())
        recipes[doc["name"]] = doc
        provider[doc["name"]].add(doc["name"])
        manifest = stone.parent / "manifest.x86_64.jsonc"
        if manifest.exists():
            body = re.sub(r"/\*.*?\*/", "", manifest.read_text(), flags=re.DOTALL)
            for name, pkg in json.loads(body)["packages"].items():
                for provided in [name, *pkg.get("provides", [])]:
                    provider[provided].add(doc["name"])
    edges: dict[str, set[str]] = {s: set() for s in recipes}
    for source, doc in recipes.items():
        for dep in (doc.get("builddeps") or []) + (doc.get("checkdeps") or []):
            edges[source] |= provider.get(dep, set())
    return set(recipes), edges


def sccs(nodes: set[str], edges: dict[str, set[str]]) -> list[set[str]]:
    """Kosaraju with explicit stacks: components that are cycles (size > 1 or self-loop)."""
    order: list[str] = []
    seen: set[str] = set()
    for root in sorted(nodes):
        if root in seen:
            continue
        seen.add(root)
        stack = [(root, iter(sorted(edges[root])))]
        while stack:
            node, it = stack[-1]
            nxt = next((n for n in it if n not in seen), None)
            if nxt is None:
                order.append(node)
                stack.pop()
            else:
                seen.add(nxt)
                stack.append((nxt, iter(sorted(edges[nxt]))))
    reverse: dict[str, set[str]] = defaultdict(set)
    for u, targets in edges.items():
        for v in targets:
            reverse[v].add(u)
    assigned: set[str] = set()
    out = []
    for root in reversed(order):
        if root in assigned:
            continue
        comp, todo = set(), [root]
        assigned.add(root)
        while todo:
            node = todo.pop()
            comp.add(node)
            for prev in reverse[node]:
                if prev not in assigned:
                    assigned.add(prev)
                    todo.append(prev)
        if len(comp) > 1 or root in edges[root]:
            out.append(comp)
    return out


def test_mass_rebuild_plans_everything_in_dependency_order(corpus_repo: Path) -> None:
    plan = cairn_plan(str(corpus_repo), "--from", "HEAD~1")
    nodes, edges = independent_graph(corpus_repo)
    assert len(plan["tasks"]) == len(nodes) == 835
    assert {t["source"] for t in plan["tasks"]} == nodes
    assert all(t["state"] == "ready" or all(r["kind"] == "dependency" for r in t["blocked_by"])
               for t in plan["tasks"])
    wave_of = {s: k for k, wave in enumerate(plan["waves"]) for s in wave}
    assert set(wave_of) == nodes
    cycles = sccs(nodes, edges)
    assert sorted(len(c) for c in cycles if len(c) > 1) == [2, 3, 4, 69]
    assert sorted(s for c in cycles for s in c if s in edges[s]) == [
        "dub", "gcc", "golang", "libcxx", "llvm", "python", "rust"]
    block = {s: i for i, c in enumerate(cycles) for s in c}
    checked = 0
    for user, providers in edges.items():
        for provider in providers:
            if user in block and block.get(provider) == block[user]:
                continue  # inside a cycle whose members are all published: may build against it
            assert wave_of[provider] < wave_of[user], (user, provider)
            checked += 1
    assert checked > 3000
    ready = {t["source"] for t in plan["tasks"] if t["state"] == "ready"}
    assert ready == set(plan["waves"][0])


def test_nothing_published_blocks_exactly_the_cycles_and_downstream(corpus_repo: Path) -> None:
    plan = cairn_plan(str(corpus_repo))
    nodes, edges = independent_graph(corpus_repo)
    cycles = sccs(nodes, edges)
    members = set().union(*cycles)
    reported = {tuple(r["members"]) for t in plan["tasks"] for r in t["blocked_by"]
                if r["kind"] == "cycle"}
    assert {frozenset(c) for c in reported} == {frozenset(c) for c in cycles}
    dependents: dict[str, set[str]] = defaultdict(set)
    for user, providers in edges.items():
        for provider in providers:
            dependents[provider].add(user)
    downstream, todo = set(), list(members)
    while todo:
        for user in dependents[todo.pop()]:
            if user not in downstream and user not in members:
                downstream.add(user)
                todo.append(user)
    in_waves = {s for wave in plan["waves"] for s in wave}
    assert in_waves == nodes - members - downstream
    for task in plan["tasks"]:
        kinds = {r["kind"] for r in task["blocked_by"]}
        assert kinds <= {"cycle", "dependency"}
        assert ("cycle" in kinds) == (task["source"] in members)
        if task["source"] in downstream:
            assert task["state"] == "blocked"


def test_one_release_edit_plans_one_source_and_a_broken_recipe_blocks_nothing(
    corpus_repo: Path, tmp_path: Path
) -> None:
    repo = tmp_path / "edit"
    git(tmp_path, "clone", "-q", str(corpus_repo), str(repo))
    bump(repo / "z" / "zlib-ng" / "stone.yaml")
    git(repo, "commit", "-qam", "zlib-ng: bump")
    plan = cairn_plan(str(repo), "--from", "HEAD~1")
    assert [(t["source"], t["state"]) for t in plan["tasks"]] == [("zlib-ng", "ready")]
    assert plan["waves"] == [["zlib-ng"]]

    broken = repo / "b" / "bison" / "stone.yaml"
    lines = broken.read_text().splitlines()
    line_no = next(i for i, line in enumerate(lines) if line.startswith("release")) + 1
    lines[line_no - 1] = "release     : [unclosed"
    broken.write_text("\n".join(lines) + "\n")
    bump(repo / "a" / "acl" / "stone.yaml")
    git(repo, "commit", "-qam", "break bison, bump acl")
    plan = cairn_plan(str(repo), "--from", "HEAD~1")
    assert [(t["source"], t["state"]) for t in plan["tasks"]] == [("acl", "ready")]
    (error,) = plan["errors"]
    assert error["file"] == "b/bison/stone.yaml"
    assert error["line"] in (line_no, line_no + 1)
    human = subprocess.run([sys.executable, "-m", "daemon.cli", "plan", str(repo), "--from",
                            "HEAD~1"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "b/bison/stone.yaml" in human.stdout and "1 builds, 1 ready" in human.stdout
