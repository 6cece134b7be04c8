"""``cairn build-recipe --dry-run`` prints the builder's own scripts, and every recipe of the
Serpent corpus expands with no unknown macro and every key applied, decided at build time,
ignored as boulder ignores it, or refused by name."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from daemon.avalanche.dryrun import dry_run
from daemon.formats import keys
from daemon.formats.stone import parse_stone

TREE = Path(__file__).resolve().parents[3]
CORPUS = TREE / ".." / "shared" / "corpora" / "serpent-recipes"
#: The documented refusals (README, daemon/formats/keys.py); a new one must be added there.
REFUSALS = {"workload", "cspgo", "samplepgo", "compressman", "mold", "strip"}


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "daemon.cli", "build-recipe", *args],
                          cwd=TREE, capture_output=True, text=True, timeout=60, check=False)


def test_dry_run_prints_every_step_expanded(tmp_path: Path) -> None:
    (tmp_path / "stone.yaml").write_text(
        "name: demo\nversion: 1.10\nrelease: 1\ntoolchain: gnu\nemul32: yes\n"
        "setup: |\n    %meson\nbuild: |\n    %meson_build\ninstall: |\n    %meson_install\n"
        "    %tmpfiles d /run/demo 0755 root root -\n")
    done = _cli(str(tmp_path), "--dry-run")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "toolchain gnu, targets emul32/x86_64, x86_64" in out
    assert "# ---- emul32/x86_64: setup ----" in out and "# ---- x86_64: install ----" in out
    assert 'meson setup --buildtype="plain" --prefix="/usr" --libdir="lib32"' in out
    assert 'DESTDIR="/build/install" meson install --no-rebuild -C "serpent-builddir"' in out
    assert ">> /build/install/usr/lib/tmpfiles.d/demo.conf" in out
    assert "%(" not in out and "%meson_" not in out and "%tmpfiles" not in out


def test_dry_run_names_refused_keys_and_fails(tmp_path: Path) -> None:
    (tmp_path / "stone.yaml").write_text("name: demo\nversion: 1\nrelease: 1\n"
                                         "build: make\nworkload: ./bench\ntune: [lto]\n")
    done = _cli(str(tmp_path / "stone.yaml"), "--dry-run")
    assert done.returncode == 1
    assert "refused: workload: profile-guided builds" in done.stdout
    assert "# key tune: ignored (not part of the stone.yaml format" in done.stdout


def test_every_corpus_recipe_expands(capsys: pytest.CaptureFixture[str]) -> None:
    if not CORPUS.is_dir():
        pytest.skip(f"the Serpent recipe corpus is not at {CORPUS} (../shared is absent)")
    recipes = sorted(CORPUS.rglob("stone.yaml"))
    verdicts: Counter[str] = Counter()
    by_key: Counter[str] = Counter()
    steps = 0
    refused_recipes = 0
    unknown: list[str] = []
    for path in recipes:
        recipe = parse_stone(path.read_bytes(), str(path))
        done = dry_run(recipe, arch="x86_64", jobs=4)
        steps += len(done.plan.scripts)
        unknown += [f"{path.parent.name}: {word}" for word in done.plan.unknown]
        refused_recipes += bool(done.refused)
        for use in done.uses:
            verdicts[str(use.verdict)] += 1
            if use.verdict is not keys.Verdict.APPLIED:
                by_key[f"{use.verdict}: {use.key}"] += 1
    assert not unknown, unknown
    refused = {k.split(": ", 1)[1] for k in by_key if k.startswith("refused")}
    assert refused <= REFUSALS, refused - REFUSALS
    assert set(keys.REFUSED) == REFUSALS
    with capsys.disabled():
        print(f"\ncorpus: {len(recipes)} recipes, {steps} step scripts expanded, "
              f"0 unknown macros or definitions; key uses: {dict(sorted(verdicts.items()))}; "
              f"recipes refused: {refused_recipes}")
        for key, count in sorted(by_key.items()):
            print(f"  {key}: {count}")
    assert len(recipes) >= 835
