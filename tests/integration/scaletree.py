"""A generated recipe tree the size of a small distribution, with the troubles a real one
has: a long cycle with nothing published, a failing build, a name nothing provides, and
hundreds of tasks behind them. The number of tasks behind each is known by construction,
so a test can check what the dashboard says against it."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

#: A cycle member with a name long enough to overflow a box or a card if anything lets it.
LONG = "editorconfig-core-c-with-an-unreasonably-long-source-name"


@dataclass(frozen=True)
class Expected:
    recipes: int
    cycle: tuple[str, ...]
    #: Open tasks held back by the cycle (its members included), by the failed build, and by
    #: the name nothing provides.
    behind_cycle: int
    behind_failure: int
    behind_unresolvable: int
    failed: str
    unresolvable: str


def stone(name: str, deps: list[str]) -> str:
    lines = [f"name: {name}", "version: 1.0.0", "release: 1", f"summary: generated {name}",
             "license: MPL-2.0"]
    if deps:
        lines += ["builddeps:", *(f"    - {d}" for d in deps)]
    return "\n".join([*lines, "build: |", "    true", ""])


def recipes(ok: int = 150, cycle: int = 12, behind_cycle: int = 60,
            behind_failure: int = 37) -> tuple[dict[str, list[str]], Expected]:
    """source → build dependencies (by package name), and what must be held back."""
    deps: dict[str, list[str]] = {}
    for i in range(ok):  # a tree of sources that build: each needs its parent
        deps[f"ok-{i:03}"] = [f"ok-{(i - 1) // 2:03}"] if i else []
    members = [LONG, *(f"cyc-{i:02}" for i in range(1, cycle))]
    for i, name in enumerate(members):
        deps[name] = [members[(i + 1) % cycle], "ok-000"]
    for i in range(behind_cycle):
        deps[f"bc-{i:02}"] = [members[i % cycle] if i < cycle else f"bc-{i - cycle:02}"]
    deps["broken"] = []
    for i in range(behind_failure):
        deps[f"bb-{i:02}"] = ["broken" if i < 5 else f"bb-{i - 5:02}"]
    deps["both"] = [members[0], "broken"]
    deps["lonely"] = ["pkgconfig(nowhere-to-be-found)"]
    deps["after-lonely"] = ["lonely"]
    return deps, Expected(recipes=len(deps), cycle=tuple(sorted(members)),
                          behind_cycle=cycle + behind_cycle + 1,
                          behind_failure=behind_failure + 1, behind_unresolvable=2,
                          failed="broken", unresolvable="pkgconfig(nowhere-to-be-found)")


def make_distribution(root: Path, **sizes: int) -> tuple[Path, Expected]:
    """The tree as a git repository; ``broken``'s manifest is not JSON, so the noop backend
    fails its build (the planner still plans it, providing its own name)."""
    repo = root / "distribution"
    deps, expected = recipes(**sizes)
    for name, needs in deps.items():
        (repo / name).mkdir(parents=True)
        (repo / name / "stone.yaml").write_text(stone(name, needs))
    (repo / "broken" / "manifest.x86_64.jsonc").write_text("{ this is not a manifest")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"],
                 ["-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-q", "-m",
                  "a distribution"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)
    return repo, expected
