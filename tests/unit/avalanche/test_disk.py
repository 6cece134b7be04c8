"""How a build tree's sizes are measured: install tree against the output cap, the whole tree
for the disk a build takes (each inode once, links from outside the tree not counted)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from daemon.avalanche.disk import DiskMeter, measure
from daemon.avalanche.errors import OutputLimitExceeded


def _tree(tmp_path: Path) -> tuple[Path, Path]:
    root, install = tmp_path / "tree", tmp_path / "tree" / "install"
    (install / "usr").mkdir(parents=True)
    (root / "work").mkdir()
    (root / "work" / "obj").write_bytes(b"o" * 1000)
    (install / "usr" / "bin").write_bytes(b"b" * 300)
    os.link(install / "usr" / "bin", root / "work" / "bin-again")  # one inode, twice
    outside = tmp_path / "cache-file"
    outside.write_bytes(b"c" * 5000)
    os.link(outside, root / "work" / "from-cache")  # its disk is the cache's
    os.symlink("/etc/hostname", install / "usr" / "link")
    return root, install


def test_the_install_tree_and_the_disk_the_tree_holds(tmp_path: Path) -> None:
    root, install = _tree(tmp_path)
    assert measure(root, install) == (300, 1300)


def test_polling_past_the_cap_says_stop_and_keeps_the_peaks(tmp_path: Path) -> None:
    root, install = _tree(tmp_path)
    meter = DiskMeter(cap=200)
    assert meter.poll() is None  # not watching anything yet
    meter.watch(root, install)
    stop = meter.poll()
    assert isinstance(stop, OutputLimitExceeded)
    assert "300 bytes, over the output cap of 200 bytes" in str(stop)
    (root / "work" / "obj").unlink()
    meter.sample()
    assert (meter.output_bytes, meter.disk_bytes) == (300, 1300)  # peaks, not the last


def test_a_check_after_the_build_raises_over_the_cap() -> None:
    meter = DiskMeter(cap=10)
    meter.check(5, "the packages")
    with pytest.raises(OutputLimitExceeded, match="the packages hold 11 bytes"):
        meter.check(11, "the packages")
    assert meter.output_bytes == 11
