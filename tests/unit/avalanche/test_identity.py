"""Build users: one leased uid per build host-wide, trees where those users can reach them,
and what a killed or removed builder left behind found again."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest

from daemon.avalanche.identity import (
    BuildIdentity,
    SandboxUnavailable,
    lease,
    reachable,
    secure_dir,
    stale_trees,
    tree_path,
)

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="leases and trees are root's")
WHO = BuildIdentity(2_000_600_000, 2_000_600_000)


def test_reachable_follows_every_directory_down() -> None:
    base = Path("/var/tmp") / f"cairn-reach-{uuid.uuid4().hex[:10]}"
    try:
        open_dir = base / "open" / "deeper"
        open_dir.mkdir(parents=True)
        for path in (base, base / "open", open_dir):
            path.chmod(0o711)
        closed = base / "closed" / "inside"
        closed.mkdir(parents=True)
        (base / "closed").chmod(0o700)
        assert reachable(open_dir, WHO)
        assert not reachable(closed, WHO)
        owned = BuildIdentity(os.stat(base / "closed").st_uid, 1)
        assert reachable(closed, owned)  # its owner may pass
    finally:
        shutil.rmtree(base, ignore_errors=True)


@needs_root
def test_leases_are_exclusive_and_released(tmp_path: Path) -> None:
    locks = tmp_path / "locks"
    with lease(2_000_700_000, 2, locks) as first, lease(2_000_700_000, 2, locks) as second:
        assert {first.uid, second.uid} == {2_000_700_000, 2_000_700_001}
        with pytest.raises(SandboxUnavailable, match="in use by another build"), \
                lease(2_000_700_000, 2, locks):
            pass
    with lease(2_000_700_000, 1, locks) as again:
        assert again.uid == 2_000_700_000


@needs_root
def test_an_account_uid_is_never_leased(tmp_path: Path) -> None:
    with pytest.raises(SandboxUnavailable, match="unusable"), lease(0, 1, tmp_path / "locks"):
        pass
    # 65534 is nobody's: an account, so never a build's.
    with pytest.raises(SandboxUnavailable, match="in use by another build or belongs to an"), \
            lease(65534, 1, tmp_path / "locks"):
        pass


@needs_root
def test_a_shared_directory_others_could_write_is_refused(tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.mkdir()
    loose.chmod(0o777)
    with pytest.raises(SandboxUnavailable, match="only root may write"):
        secure_dir(loose, 0o711)
    link = tmp_path / "link"
    link.symlink_to(tmp_path)
    with pytest.raises(SandboxUnavailable, match="must be a directory owned by root"):
        secure_dir(link, 0o711)


@needs_root
def test_trees_of_a_removed_builder_are_found_by_any_other(tmp_path: Path) -> None:
    gone, alive = tmp_path / "gone-root", tmp_path / "alive-root"
    gone.mkdir()
    alive.mkdir()
    tmp_path.chmod(0o700)  # out of the build users' reach: the shared directory is used
    orphan = tree_path(gone, None, WHO, "1-aaaa")
    mine = tree_path(alive, None, WHO, "2-bbbb")
    assert orphan.parent == mine.parent != alive / "builds"
    orphan.mkdir()
    mine.mkdir()
    try:
        assert orphan not in stale_trees(alive, None, WHO)
        shutil.rmtree(gone)
        found = stale_trees(alive, None, WHO)
        assert orphan in found and mine in found
        assert any(p.name.endswith(".owner") and p.read_text().strip() == str(gone)
                   for p in found)  # fmt: skip
    finally:
        for path in (orphan, mine):
            shutil.rmtree(path, ignore_errors=True)
        for marker in orphan.parent.glob("*.owner"):
            if marker.read_text().strip() in (str(gone), str(alive)):
                marker.unlink()
