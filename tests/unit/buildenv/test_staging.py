"""Removing a staging tree that an interrupted mmdebstrap left behind, its mounts included."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from daemon.buildenv.build import mounts_under, remove_tree

MOUNTINFO = """\
22 1 0:21 / /proc rw,nosuid - proc proc rw
90 80 0:5 / /cache/env/.buildenv-x/root/dev/pts rw - devpts none rw
91 80 0:22 / /cache/env/.buildenv-x/root/sys ro - sysfs sys ro
92 80 0:23 / /cache/env/.buildenv-x/root/proc ro - proc proc ro
93 80 0:24 / /cache/env/.buildenv-x/root/my\\040dir rw - tmpfs t rw
94 80 0:25 / /cache/env/.buildenv-xy/root/proc ro - proc proc ro
"""


def test_mounts_below_a_tree_are_found_deepest_first_and_unescaped() -> None:
    found = mounts_under(Path("/cache/env/.buildenv-x"), MOUNTINFO)
    assert found[0] == Path("/cache/env/.buildenv-x/root/dev/pts")
    assert set(found) == {Path("/cache/env/.buildenv-x/root/dev/pts"),
                          Path("/cache/env/.buildenv-x/root/sys"),
                          Path("/cache/env/.buildenv-x/root/proc"),
                          Path("/cache/env/.buildenv-x/root/my dir")}


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")
def test_a_tree_with_a_read_only_mount_inside_is_removed(tmp_path: Path) -> None:
    staging = tmp_path / ".buildenv-left"
    proc = staging / "root" / "proc"
    proc.mkdir(parents=True)
    (staging / "root" / "etc").mkdir()
    (staging / "root" / "etc" / "hostname").write_text("x\n")
    subprocess.run(["mount", "-t", "proc", "-o", "ro", "proc", str(proc)], check=True)
    try:
        assert mounts_under(staging) == [proc]
        remove_tree(staging)
        assert not staging.exists()
        assert mounts_under(staging) == []
    finally:
        subprocess.run(["umount", "--lazy", str(proc)], check=False, capture_output=True)
