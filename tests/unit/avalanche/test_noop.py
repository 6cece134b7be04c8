"""The noop backend declares the committed manifest's packages, empty, without a subprocess."""

from __future__ import annotations

from pathlib import Path

from daemon.avalanche.build import run_build
from daemon.avalanche.noop import load_manifest_packages
from daemon.avalanche.packaging import check_archive
from events.payloads import Outcome
from tests.unit.avalanche.support import EXAMPLES, config, make_repo, task_for


def test_noop_build_matches_committed_manifest(tmp_path: Path) -> None:
    repo, commit = make_repo(tmp_path / "recipes")
    cfg = config(tmp_path / "b", backend="noop")
    result = run_build(task_for(repo, commit, "libgreet"), cfg)
    assert result.outcome is Outcome.SUCCESS, result.reason
    declared = load_manifest_packages(EXAMPLES / "libgreet" / "manifest.x86_64.jsonc")
    assert {a.name for a in result.artefacts} == {p.name for p in declared}
    for artefact in result.artefacts:
        manifest = check_archive(artefact.path)
        assert manifest.files == []
        expected = next(p for p in declared if p.name == manifest.name)
        assert set(expected.provides) <= set(manifest.provides)
        assert f"name({manifest.name})" in manifest.provides
    assert "step build" not in result.log_path.read_text()
